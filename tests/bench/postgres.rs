//! The benches' PostgreSQL databases: a new one per measurement on the server that
//! `BILLSHADOW_BENCH_POSTGRES` names.

/// A new, empty database `name` on the server `admin` names; its URL.
pub(crate) fn database(admin: &str, name: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .expect("BILLSHADOW_BENCH_POSTGRES answers");
        for statement in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&statement)
                .execute(&mut conn)
                .await
                .expect("the bench's database is made");
        }
    });
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}
