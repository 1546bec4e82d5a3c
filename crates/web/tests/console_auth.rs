//! The console's authentication over the real server on loopback (SQLite file, injected clock):
//! login and its refusals, CSRF, throttling, session expiry, one-time links, roles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use paybridge_server::config::Config;
use paybridge_server::{runtime, Gateway};
use paybridge_store::{ManualClock, OperatorRole, Store, StoreOptions};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

const T0: i64 = 1_800_000_000_000;
const PASSWORD: &str = "correct horse battery";

struct Console {
    base: String,
    store: Store,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A browser's state: its cookies.
#[derive(Default, Clone)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(SET_COOKIE) {
            let text = v.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (k, val) = pair.split_once('=').unwrap();
            self.0.retain(|(name, _)| name != k);
            if !val.is_empty() && !text.contains("Max-Age=0") {
                self.0.push((k.to_string(), val.to_string()));
            }
        }
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

impl Console {
    async fn start() -> Console {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let url = format!("sqlite://{}", dir.path().join("pb.db").display());
        let store = Store::open_with(
            &url,
            StoreOptions {
                clock: clock.clone(),
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = Config::minimal(&base).unwrap();
        let gw = Arc::new(Gateway::from_config(&config, store.clone()).unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let pages = paybridge_web::router(gw.clone());
        tokio::spawn(runtime::serve_with(
            listener,
            gw,
            config.limits.clone(),
            pages,
            async move {
                let _ = stopped.await;
            },
        ));
        for (name, role) in [
            ("alice", OperatorRole::Admin),
            ("vera", OperatorRole::Viewer),
            ("sam", OperatorRole::Support),
        ] {
            let hash = paybridge_crypto::hash_password(PASSWORD).unwrap();
            store.create_operator(name, role, &hash).await.unwrap();
        }
        Console {
            base,
            store,
            clock,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            _dir: dir,
            _stop: stop,
        }
    }

    async fn get(&self, jar: &mut Jar, path: &str) -> (StatusCode, String, Option<String>) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, jar.header())
            .send()
            .await
            .unwrap();
        jar.take(&resp);
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        (status, resp.text().await.unwrap(), location)
    }

    async fn post(
        &self,
        jar: &mut Jar,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, jar.header())
            .form(form)
            .send()
            .await
            .unwrap();
        jar.take(&resp);
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        (status, resp.text().await.unwrap(), location)
    }

    /// Opens the login page and posts the form; returns the answer.
    async fn login(&self, jar: &mut Jar, user: &str, password: &str) -> StatusCode {
        let (status, page, _) = self.get(jar, "/console/login").await;
        assert_eq!(status, StatusCode::OK);
        let token = csrf_of(&page);
        let (status, _, location) = self
            .post(
                jar,
                "/console/login",
                &[("csrf", &token), ("username", user), ("password", password)],
            )
            .await;
        if status == StatusCode::SEE_OTHER {
            assert_eq!(location.as_deref(), Some("/console"));
        }
        status
    }

    /// A page's CSRF token, after opening it.
    async fn csrf(&self, jar: &mut Jar) -> String {
        let (status, page, _) = self.get(jar, "/console").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        csrf_of(&page)
    }
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form with a csrf field") + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

#[tokio::test]
async fn login_sessions_csrf_and_logout() {
    let c = Console::start().await;
    let mut anon = Jar::default();
    let (status, _, location) = c.get(&mut anon, "/console/payments").await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/login"))
    );

    // The login form itself is CSRF-protected.
    let mut jar = Jar::default();
    c.get(&mut jar, "/console/login").await;
    assert!(jar.has("pb_login_csrf"));
    let (status, _, _) = c
        .post(
            &mut jar,
            "/console/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!jar.has("pb_session"));

    assert_eq!(
        c.login(&mut jar, "alice", "wrong password!").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.login(&mut jar, "nobody", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!jar.has("pb_session"));

    // The right password: a session cookie, HttpOnly and SameSite=Strict.
    c.get(&mut jar, "/console/login").await;
    let page = c.get(&mut jar, "/console/login").await.1;
    let resp = c
        .http
        .post(format!("{}/console/login", c.base))
        .header(COOKIE, jar.header())
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("pb_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http: a Secure cookie would never come back"
    );
    jar.take(&resp);
    let (status, page, _) = c.get(&mut jar, "/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("alice"));
    // No live account is configured: the session starts in sandbox, under its banner.
    assert!(page.contains("data-mode=\"sandbox\""));

    // A form posted without its token changes nothing.
    let (status, _, _) = c.post(&mut jar, "/console/mode", &[("mode", "live")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = c
        .post(
            &mut jar,
            "/console/mode",
            &[("mode", "live"), ("csrf", "0123abcd")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(c
        .get(&mut jar, "/console")
        .await
        .1
        .contains("data-mode=\"sandbox\""));
    // Another session's token is not this one's.
    let mut other = Jar::default();
    assert_eq!(
        c.login(&mut other, "sam", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let others = c.csrf(&mut other).await;
    let (status, _, _) = c
        .post(
            &mut jar,
            "/console/mode",
            &[("mode", "live"), ("csrf", &others)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // With it, the switch works and the sandbox banner is gone.
    let token = c.csrf(&mut jar).await;
    let (status, _, _) = c
        .post(
            &mut jar,
            "/console/mode",
            &[("mode", "live"), ("csrf", &token)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let page = c.get(&mut jar, "/console").await.1;
    assert!(!page.contains("data-mode=\"sandbox\""));

    // Logout ends the session on the server, not just in the browser.
    let stolen = jar.clone();
    let (status, _, _) = c
        .post(&mut jar, "/console/logout", &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = c.get(&mut stolen.clone(), "/console").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let c = Console::start().await;
    let mut jar = Jar::default();
    assert_eq!(
        c.login(&mut jar, "alice", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    c.clock.advance(29 * 60_000);
    assert_eq!(
        c.get(&mut jar, "/console").await.0,
        StatusCode::OK,
        "used within 30 min"
    );
    c.clock.advance(29 * 60_000);
    assert_eq!(
        c.get(&mut jar, "/console").await.0,
        StatusCode::OK,
        "and again"
    );
    c.clock.advance(31 * 60_000);
    let (status, _, location) = c.get(&mut jar, "/console").await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/login"))
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_username() {
    let c = Console::start().await;
    let mut jar = Jar::default();
    for _ in 0..5 {
        assert_eq!(
            c.login(&mut jar, "vera", "not her password").await,
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password is refused now, without being checked.
    assert_eq!(
        c.login(&mut jar, "vera", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other operators are not locked out by vera's attempts.
    assert_eq!(
        c.login(&mut Jar::default(), "alice", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    // After the window, vera can log in again.
    c.clock.advance(15 * 60_000 + 1);
    assert_eq!(
        c.login(&mut jar, "vera", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let c = Console::start().await;
    let mut jar = Jar::default();
    // Twenty wrong guesses at many usernames from one address...
    for i in 0..20 {
        let user = format!("guess{i}");
        assert_eq!(
            c.login(&mut jar, &user, "whatever").await,
            StatusCode::UNAUTHORIZED
        );
    }
    // ...and that address may not try even a real operator's right password.
    assert_eq!(
        c.login(&mut jar, "alice", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn one_time_links_log_in_once() {
    let c = Console::start().await;
    let (alice, _) = c
        .store
        .operator_credentials("alice")
        .await
        .unwrap()
        .unwrap();
    let token = c.store.create_login_token(&alice.id, 60_000).await.unwrap();
    let path = format!("/console/login/link?token={}", token.expose());
    let mut jar = Jar::default();
    // Opening the link does not use it up (a link preview must not): the button does.
    let (status, page, _) = c.get(&mut jar, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!jar.has("pb_session"));
    let form = [("csrf", csrf_of(&page)), ("token", token.expose().clone())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, location) = c.post(&mut jar, "/console/login/link", &form).await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console"))
    );
    assert!(jar.has("pb_session"));
    assert_eq!(c.get(&mut jar, "/console").await.0, StatusCode::OK);
    // A second use, in another browser, is refused.
    let mut second = Jar::default();
    let (_, page, _) = c.get(&mut second, &path).await;
    let form = [("csrf", csrf_of(&page)), ("token", token.expose().clone())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = c.post(&mut second, "/console/login/link", &form).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!second.has("pb_session"));
}

#[tokio::test]
async fn roles_decide_the_actions() {
    let c = Console::start().await;
    let form = |token: &str| {
        vec![
            ("csrf".to_string(), token.to_string()),
            ("amount".to_string(), "1.00".to_string()),
            ("reason".to_string(), "customer asked".to_string()),
            ("idempotency_key".to_string(), "k1".to_string()),
        ]
    };
    for (user, allowed) in [("vera", false), ("sam", true), ("alice", true)] {
        let mut jar = Jar::default();
        assert_eq!(
            c.login(&mut jar, user, PASSWORD).await,
            StatusCode::SEE_OTHER
        );
        let token = c.csrf(&mut jar).await;
        let fields = form(&token);
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (status, _, location) = c
            .post(&mut jar, "/console/payments/pay_missing/refund", &fields)
            .await;
        if allowed {
            // Allowed: it reaches the service, which knows no such payment.
            assert_eq!(status, StatusCode::SEE_OTHER, "{user}");
            assert!(location.unwrap().contains("error="), "{user}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{user}");
        }
        // Everyone may read.
        assert_eq!(c.get(&mut jar, "/console/payments").await.0, StatusCode::OK);
        assert_eq!(c.get(&mut jar, "/console/events").await.0, StatusCode::OK);
        assert_eq!(c.get(&mut jar, "/console/refunds").await.0, StatusCode::OK);
    }
    // Every login is in the audit log with the operator's name.
    let actions = c.store.list_operator_actions(10).await.unwrap();
    assert_eq!(actions.len(), 3);
    assert!(actions.iter().all(|a| a.to_status == "logged_in"));
}

#[tokio::test]
async fn admins_manage_keys_and_operators_support_cannot() {
    let c = Console::start().await;
    let mut sam = Jar::default();
    assert_eq!(
        c.login(&mut sam, "sam", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    for path in ["/console/api-keys", "/console/operators"] {
        assert_eq!(
            c.get(&mut sam, path).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let token = c.csrf(&mut sam).await;
    let (status, _, _) = c
        .post(
            &mut sam,
            "/console/api-keys",
            &[
                ("csrf", &token),
                ("merchant", "m"),
                ("scope", "read"),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(c.store.list_api_keys(None).await.unwrap().is_empty());

    let mut alice = Jar::default();
    assert_eq!(
        c.login(&mut alice, "alice", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let token = c.csrf(&mut alice).await;
    let (status, page, _) = c
        .post(
            &mut alice,
            "/console/api-keys",
            &[
                ("csrf", &token),
                ("merchant", "shop"),
                ("scope", "read"),
                ("scope", "refund"),
                ("reason", "new shop backend"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let marker = "<pre data-new-key>";
    let start = page.find(marker).expect("the new key on the page") + marker.len();
    let secret = &page[start..start + page[start..].find('<').unwrap()];
    let key = c
        .store
        .authenticate(secret)
        .await
        .unwrap()
        .expect("a working key");
    // Sandbox session, sandbox key, with the scopes asked for.
    assert_eq!(key.mode, paybridge_core::Mode::Sandbox);
    assert_eq!(
        key.scopes,
        vec![
            paybridge_store::ApiScope::Read,
            paybridge_store::ApiScope::Refund
        ]
    );
    // Shown once: the list shows its prefix only.
    let list = c.get(&mut alice, "/console/api-keys").await.1;
    assert!(list.contains(&key.id) && !list.contains(secret));
    let (status, _, _) = c
        .post(
            &mut alice,
            &format!("/console/api-keys/{}/revoke", key.id),
            &[("csrf", &token), ("reason", "rotated")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(c.store.authenticate(secret).await.unwrap().is_none());

    // Disabling sam ends his session at once.
    let (status, _, _) = c
        .post(
            &mut alice,
            "/console/operators/sam/disable",
            &[("csrf", &token), ("reason", "left the team")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(c.get(&mut sam, "/console").await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        c.login(&mut Jar::default(), "sam", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    let actions = c.store.list_operator_actions(20).await.unwrap();
    let did = |what: &str, why: &str| {
        actions
            .iter()
            .any(|a| a.to_status == what && a.actor == "operator:alice" && a.reason.contains(why))
    };
    assert!(did("created", "new shop backend"));
    assert!(did("revoked", "rotated"));
    assert!(did("disabled", "left the team"));
    assert_eq!(
        c.get(&mut alice, "/console/operators").await.0,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&mut alice, "/console/accounts").await.0,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&mut alice, "/console/reconciliations").await.0,
        StatusCode::OK
    );
}
