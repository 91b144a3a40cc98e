//! The Docker daemon over TCP with TLS, for real: a second `dockerd` of its
//! own (its own data and exec roots, no bridge, no iptables) listening on a
//! loopback port with `--tlsverify`, and certificates made by `openssl` for
//! this test. The controller connects with the certificates from
//! `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` says so; plain TCP to the
//! same port, a client certificate from another CA, or a CA that did not
//! sign the daemon's certificate all fail.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controller::image::{Engine, ImageError, Transport, transport};

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`<name>-ca.pem`, `<name>-ca-key.pem`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    run(Command::new("openssl")
        .current_dir(dir)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-keyout", &format!("{name}-ca-key.pem")])
        .args(["-out", &format!("{name}-ca.pem")])
        .args(["-subj", &format!("/CN={name} test CA")]));
}

/// A certificate `<out>.pem` with key `<out>-key.pem`, signed by CA `ca`.
fn make_cert(dir: &Path, ca: &str, out: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{out}.ext")), extensions).unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-newkey", "rsa:2048", "-nodes"])
        .args(["-keyout", &format!("{out}-key.pem")])
        .args(["-out", &format!("{out}.csr")])
        .args(["-subj", &format!("/CN={out}")]));
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
        .args(["-in", &format!("{out}.csr")])
        .args(["-CA", &format!("{ca}-ca.pem")])
        .args(["-CAkey", &format!("{ca}-ca-key.pem")])
        .args(["-out", &format!("{out}.pem")])
        .args(["-extfile", &format!("{out}.ext")]));
}

/// A client certificate directory as `DOCKER_CERT_PATH` lays it out.
fn cert_dir(dir: &Path, name: &str, ca: &str, client: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    for (from, to) in [
        (format!("{ca}-ca.pem"), "ca.pem"),
        (format!("{client}.pem"), "cert.pem"),
        (format!("{client}-key.pem"), "key.pem"),
    ] {
        std::fs::copy(dir.join(from), path.join(to)).unwrap();
    }
    path
}

/// A TLS-only Docker daemon owned by the test; stopped when dropped.
struct TlsDaemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsDaemon {
    fn start() -> TlsDaemon {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        make_ca(path, "good");
        make_ca(path, "other");
        make_cert(
            path,
            "good",
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        make_cert(path, "good", "client", "extendedKeyUsage=clientAuth\n");
        make_cert(path, "other", "stranger", "extendedKeyUsage=clientAuth\n");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap();
        let log = std::fs::File::create(path.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .current_dir(path)
            .args(["--tlsverify", "--tlscacert", "good-ca.pem"])
            .args(["--tlscert", "server.pem", "--tlskey", "server-key.pem"])
            .args(["-H", &format!("tcp://127.0.0.1:{port}")])
            .arg("--data-root")
            .arg(path.join("data"))
            .arg("--exec-root")
            .arg(path.join("exec"))
            .arg("--pidfile")
            .arg(path.join("dockerd.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start dockerd ({error}); run `scripts/local-cloud.sh install` \
                     (the test command does it for you)"
                )
            });
        TlsDaemon { child, port, dir }
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for TlsDaemon {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd and unmount its roots.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decide(vars: &[(&str, String)]) -> Transport {
    let vars: HashMap<&str, String> = vars.iter().cloned().collect();
    transport(|name| vars.get(name).cloned()).unwrap().0
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_with_tls_verify_reaches_a_tls_daemon_and_nothing_else_does() {
    let mut daemon = TlsDaemon::start();
    let path = daemon.dir.path().to_path_buf();
    let good = cert_dir(&path, "good-certs", "good", "client");
    let tls = decide(&[
        ("DOCKER_HOST", daemon.host()),
        ("DOCKER_TLS_VERIFY", "1".into()),
        ("DOCKER_CERT_PATH", good.display().to_string()),
    ]);
    assert_eq!(
        tls,
        Transport::Tls {
            host: daemon.host(),
            cert_path: good.clone()
        }
    );
    // The daemon takes a few seconds to start.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("dockerd exited with {status}:\n{}", daemon.log());
        }
        match Engine::connect_with(tls.clone(), "DOCKER_HOST").await {
            Ok(engine) => {
                assert_eq!(engine.host(), daemon.host());
                break;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the TLS daemon never answered: {error}\n{}",
                    daemon.log()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    // Plain TCP to the same (loopback) port: allowed by the decision, and
    // the TLS daemon does not answer it.
    let plain = decide(&[("DOCKER_HOST", daemon.host())]);
    assert!(matches!(plain, Transport::PlainTcp { .. }), "{plain:?}");
    let error = Engine::connect_with(plain, "DOCKER_HOST")
        .await
        .unwrap_err();
    eprintln!("plain TCP: {error}");
    assert!(
        matches!(error, ImageError::DaemonUnreachable { .. })
            && error
                .to_string()
                .contains("HTTP request to an HTTPS server"),
        "{error}"
    );

    // A client certificate the daemon's CA did not sign.
    let stranger = cert_dir(&path, "stranger-certs", "good", "stranger");
    let error = Engine::connect_with(
        Transport::Tls {
            host: daemon.host(),
            cert_path: stranger,
        },
        "DOCKER_HOST",
    )
    .await
    .unwrap_err();
    eprintln!("client certificate of another CA: {error}");
    // With TLS 1.3 the daemon refuses the client certificate after the
    // client has finished its side of the handshake: the refusal reaches the
    // client as the alert, or, when the daemon has already closed the
    // connection, as a connection closed before any answer.
    let text = error.to_string();
    assert!(
        matches!(error, ImageError::DaemonUnreachable { .. })
            && (text.contains("BadCertificate") || text.contains("connection was not ready")),
        "{error}"
    );

    // A CA that did not sign the daemon's certificate: the daemon is not
    // trusted, whatever the client presents.
    let wrong_ca = cert_dir(&path, "wrong-ca-certs", "other", "client");
    let error = Engine::connect_with(
        Transport::Tls {
            host: daemon.host(),
            cert_path: wrong_ca,
        },
        "DOCKER_HOST",
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    eprintln!("daemon not trusted: {text}");
    assert!(
        matches!(error, ImageError::DaemonUnreachable { .. })
            && text.contains(&daemon.host())
            && text.contains("UnknownIssuer"),
        "{text}"
    );
}
