//! Rebuilds the binary when a migration is added: `sqlx::migrate!` embeds
//! `src/store/migrations/` at compile time, and cargo does not otherwise know to look there.

fn main() {
    println!("cargo:rerun-if-changed=src/store/migrations");
}
