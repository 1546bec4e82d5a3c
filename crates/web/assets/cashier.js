// The hosted cashier's live parts. It only shows what the gateway says (GET .../status): it
// never decides that the order is paid, even after a wallet reports success.
(function () {
  "use strict";
  var root = document.getElementById("cashier");
  if (!root) return;
  var statusUrl = root.dataset.statusUrl;
  var expiresAt = Number(root.dataset.expiresAt);
  // The server's clock, not the phone's: the offset is measured once at load.
  var offset = Number(root.dataset.now) - Date.now();
  var status = root.dataset.status;
  var countdown = document.getElementById("countdown");
  var notice = document.getElementById("notice");
  var leaving = false;

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function left(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h > 0 ? h + ":" + pad(m) : pad(m)) + ":" + pad(s % 60);
  }
  function show(next, returnUrl) {
    status = next;
    root.dataset.status = next;
    ["open", "paid", "expired"].forEach(function (s) {
      var el = document.getElementById("state-" + s);
      if (el) el.hidden = s !== next;
    });
    var line = document.getElementById("countdown-line");
    if (line) line.hidden = next !== "open";
    if (next === "paid" && returnUrl && !leaving) {
      leaving = true;
      setTimeout(function () { window.location.assign(returnUrl); }, 1200);
    }
  }
  function tick() {
    if (status !== "open") return;
    var ms = expiresAt - (Date.now() + offset);
    if (countdown) countdown.textContent = left(ms);
    // The gateway says when it is over; until then the countdown only reads zero.
  }
  function poll() {
    if (status === "expired" || leaving) return;
    fetch(statusUrl, { cache: "no-store", headers: { accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        if (typeof s.expires_at === "number") expiresAt = s.expires_at;
        if (s.status !== status || (s.status === "paid" && !leaving)) show(s.status, s.return_url);
      })
      .catch(function () {});
  }

  // Inside WeChat: JSAPI through the client's bridge; the result is only a hint to poll now.
  var wx = document.getElementById("pay-wechat");
  if (wx && wx.dataset.params) {
    wx.addEventListener("click", function () {
      var params = JSON.parse(wx.dataset.params);
      function invoke() {
        window.WeixinJSBridge.invoke("getBrandWCPayRequest", params, function (res) {
          if (res && res.err_msg === "get_brand_wcpay_request:ok" && notice) {
            notice.textContent = root.dataset.textChecking;
          }
          poll();
        });
      }
      if (window.WeixinJSBridge) invoke();
      else document.addEventListener("WeixinJSBridgeReady", invoke, { once: true });
    });
  }

  tick();
  setInterval(tick, 1000);
  poll();
  setInterval(poll, 2000);
  if (status === "paid") {
    var link = document.getElementById("return-link");
    if (link) show("paid", link.getAttribute("href"));
  }
})();
