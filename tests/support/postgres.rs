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
    /// The `postgres` user's password, when the server asks for one.
    password: Option<String>,
    /// The CA that signed the server's certificate, when it speaks TLS (and only TLS).
    ca: Option<PathBuf>,
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
        Postgres::start_with(None, false)
    }

    /// A server whose TCP connections need `password` (SCRAM) when given, and, with `tls`,
    /// take TLS connections only, with a certificate for `localhost` and 127.0.0.1 signed by
    /// a throwaway CA (`ca_file`) made with the `openssl` command.
    pub(crate) fn start_with(password: Option<&str>, tls: bool) -> Postgres {
        let bin = binaries();
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let ca = tls.then(|| certificates(dir.path()));
        let pwfile = dir.path().join("pwfile");
        if let Some(password) = password {
            std::fs::write(&pwfile, password).unwrap();
        }
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
            password: password.map(str::to_owned),
            ca,
        };
        let pwfile_arg = format!("--pwfile={}", pwfile.display());
        let mut initdb = vec![
            pg.tool("initdb"),
            "--username=postgres".to_owned(),
            "--encoding=UTF8".to_owned(),
            "-D".to_owned(),
            pg.data_str().to_owned(),
        ];
        if password.is_some() {
            initdb.extend([
                "--auth-local=trust".to_owned(),
                "--auth-host=scram-sha-256".to_owned(),
                pwfile_arg,
            ]);
        } else {
            initdb.push("--auth=trust".to_owned());
        }
        pg.pg(&initdb.iter().map(String::as_str).collect::<Vec<_>>());
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.port,
            pg.socket_dir().display()
        );
        if tls {
            let folder = pg.socket_dir().display().to_string();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={folder}/server.crt -c ssl_key_file={folder}/server.key"
            ));
            // TLS only: a plain TCP connection is refused.
            let method = if password.is_some() {
                "scram-sha-256"
            } else {
                "trust"
            };
            let hba = format!(
                "local all all trust\nhostssl all all 127.0.0.1/32 {method}\nhostnossl all all 127.0.0.1/32 reject\n"
            );
            std::fs::write(pg.data.join("pg_hba.conf"), hba).unwrap();
        }
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

    /// The database's URL, with the password when there is one; with TLS, by the name the
    /// certificate carries (`localhost`).
    pub(crate) fn url(&self, database: &str) -> String {
        let user = match &self.password {
            Some(p) => format!("postgres:{p}"),
            None => "postgres".to_owned(),
        };
        let host = if self.ca.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        format!("postgres://{user}@{host}:{}/{database}", self.port)
    }

    /// The CA certificate (PEM) of a TLS server.
    pub(crate) fn ca_file(&self) -> Option<PathBuf> {
        self.ca.clone()
    }

    /// The URL this test's own connections use (TLS required when the server has it).
    fn admin_url(&self, database: &str) -> String {
        let url = self.url(database);
        if self.ca.is_some() {
            format!("{url}?sslmode=require")
        } else {
            url
        }
    }

    pub(crate) fn create_database(&self, name: &str) {
        let url = self.admin_url("postgres");
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
        let url = self.admin_url(name);
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

/// A self-signed CA certificate at `path` (its key next to it).
pub(crate) fn self_signed_ca(path: &Path) {
    let key = path.with_extension("key");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        path.to_str().unwrap(),
        "-days",
        "2",
        "-subj",
        "/CN=billshadow test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
}

/// A CA (`ca.crt`) and a server certificate for `localhost` and 127.0.0.1 it signed
/// (`server.crt`, `server.key`) in `folder`; the CA's path.
pub(crate) fn certificates(folder: &Path) -> PathBuf {
    let at = |name: &str| folder.join(name).display().to_string();
    let ca = folder.join("ca.crt");
    self_signed_ca(&ca);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &at("server.key"),
        "-out",
        &at("server.csr"),
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        folder.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &at("server.csr"),
        "-CA",
        &at("ca.crt"),
        "-CAkey",
        &at("ca.key"),
        "-CAcreateserial",
        "-out",
        &at("server.crt"),
        "-days",
        "2",
        "-extfile",
        &at("server.ext"),
    ]);
    run("chmod", &["600", &at("server.key")]);
    ca
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?} failed");
}
