//! A throwaway PostgreSQL server for one test: `initdb` into a temporary folder, `pg_ctl start`
//! on a free port (as the `postgres` OS user when the tests run as root, since PostgreSQL
//! refuses to run as root), stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct Postgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn binaries() -> PathBuf {
    for version in ["17", "16", "15"] {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql/*/bin"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
        let bin = binaries();
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if as_postgres {
            // The server's user must reach and own its folders.
            run("chmod", &["755", dir.path().to_str().unwrap()]);
            run("chown", &["-R", "postgres", dir.path().to_str().unwrap()]);
        }
        let pg = Postgres {
            _dir: dir,
            data,
            bin,
            port: super::free_port(),
            as_postgres,
        };
        pg.pg(&[
            &pg.tool("initdb"),
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "-D",
            pg.data_str(),
        ]);
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.port,
            pg.socket_dir().display()
        );
        let log = pg.socket_dir().join("server.log");
        pg.pg(&[
            &pg.tool("pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            pg.data_str(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
        ]);
        pg
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    fn data_str(&self) -> &str {
        self.data.to_str().unwrap()
    }

    fn socket_dir(&self) -> &Path {
        self.data.parent().unwrap()
    }

    fn pg(&self, argv: &[&str]) {
        let status = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(argv)
                .status()
        } else {
            Command::new(argv[0]).args(&argv[1..]).status()
        }
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", argv[0]));
        assert!(status.success(), "{} failed: {status}", argv.join(" "));
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub(crate) fn create_database(&self, name: &str) {
        let url = self.url("postgres");
        super::runtime().block_on(async {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        });
    }

    /// A database `name` with a `bill_lines` table holding `rows`.
    pub(crate) fn bill_lines(&self, name: &str, rows: &[[String; 7]]) {
        self.create_database(name);
        let url = self.url(name);
        super::runtime().block_on(super::postgres_bill_lines(&url, rows));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let argv = [
            self.tool("pg_ctl"),
            "stop".to_owned(),
            "-m".to_owned(),
            "immediate".to_owned(),
            "-D".to_owned(),
            self.data_str().to_owned(),
        ];
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(&argv)
                .status()
        } else {
            Command::new(argv[0]).args(&argv[1..]).status()
        };
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?} failed");
}
