//! Helpers shared by the unit tests and the integration tests in `tests/`
//! (not part of Herald's API).

use sqlx::Connection;

/// Names the variable `./scripts/test` sets to the private PostgreSQL
/// server it starts for the tests.
pub const POSTGRES_ENV: &str = "HERALD_TEST_DATABASE_URL";

/// A new, empty PostgreSQL database on the test server, as a
/// `DATABASE_URL`; each test gets its own, so tests run in parallel without
/// seeing each other's rows.
pub async fn postgres_database() -> String {
    let admin = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_ENV} is not set: run the tests through ./scripts/test, which starts \
             a PostgreSQL server of its own for them"
        )
    });
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the test PostgreSQL server answers");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("CREATE DATABASE");
    let _ = conn.close().await;
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// A SQLite store URL: the file `herald.db` under `dir`.
pub fn sqlite_database(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("herald.db").display())
}

/// Both kinds of store URL for one test: a SQLite file under `dir` and a
/// fresh PostgreSQL database.
pub async fn both_backends(dir: &std::path::Path) -> [String; 2] {
    [sqlite_database(dir), postgres_database().await]
}
