// `sqlx::migrate!` embeds the migration files at compile time; without this, adding one does
// not rebuild the crate and the new migration silently never runs.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
