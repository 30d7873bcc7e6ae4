//! The migrations are embedded at compile time (`sqlx::migrate!`); without
//! this, adding a migration file would not rebuild the server and it would
//! run without the new step.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
