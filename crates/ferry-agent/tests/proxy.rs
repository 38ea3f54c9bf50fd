//! The agent behind a real reverse proxy: nginx in front of `ferry serve` under the path prefix
//! `/ferry/`, over plain HTTP and with nginx terminating TLS with a certificate from a private
//! CA that the agent trusts through `ca_file`. Needs the `nginx` binary (the CI script installs
//! it); the test fails, rather than skips, without it.

#[path = "common/fleet.rs"]
mod fleet;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_agent::exit::Exit;
use fleet::{exit, output, Device, Fleet, KillOnDrop};

/// The longest nginx may take to start listening.
const NGINX_START: Duration = Duration::from_secs(30);

/// The nginx binary: on PATH or in /usr/sbin (not on a normal user's PATH).
fn nginx_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|bin| bin.is_file())
        .expect("this test needs nginx: `apt-get install nginx-light` (.ci/run installs it)")
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A private CA and a server certificate it issued for 127.0.0.1, as PEM files in `dir`:
/// `ca.pem`, `server.pem` and `server.key`. Made afresh for every run.
fn private_ca(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Ferry test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}

/// nginx on 127.0.0.1, proxying `/ferry/` to `upstream` over plain HTTP on one port and HTTPS
/// on another; everything it writes stays in its own directory.
struct Nginx {
    http: u16,
    https: u16,
    dir: PathBuf,
    _process: KillOnDrop,
}

impl Nginx {
    fn start(dir: &Path, upstream: &str, tls: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (http, https) = (free_port(), free_port());
        // As root, the workers would run as `nobody` and could not use this private directory.
        let user = if rustix::process::geteuid().is_root() { "user root root;" } else { "" };
        let d = dir.display();
        let conf = format!(
            r#"{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{http};
        listen 127.0.0.1:{https} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        # As in the README: the prefix is removed on the way to the server.
        location /ferry/ {{
            proxy_pass http://{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_request_buffering off;
            client_max_body_size 0;
        }}
    }}
}}
"#,
            cert = tls.join("server.pem").display(),
            key = tls.join("server.key").display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut process = KillOnDrop(
            Command::new(nginx_bin())
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, https)).is_err() {
            let log = || std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            if let Some(status) = process.0.try_wait().unwrap() {
                panic!("nginx exited ({status}) before listening:\n{}", log());
            }
            assert!(started.elapsed() < NGINX_START, "nginx did not listen within {NGINX_START:?}:\n{}", log());
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { http, https, dir: dir.to_owned(), _process: process }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// Behind nginx under `/ferry/`, the agent enrolls, checks in, verifies both repositories and
/// installs, over plain HTTP and over HTTPS with its CA in `ca_file`; without the CA it
/// refuses the certificate.
#[test]
fn the_agent_installs_through_nginx_under_a_path_prefix_with_and_without_tls() {
    let fleet = Fleet::start();
    let tls = fleet.path("tls");
    std::fs::create_dir_all(&tls).unwrap();
    private_ca(&tls);
    let nginx = Nginx::start(&fleet.path("nginx"), fleet.url.trim_start_matches("http://"), &tls);
    let release = fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required"]);

    let plain = Device::with_server(&fleet, "gw-http", &format!("http://127.0.0.1:{}/ferry", nginx.http), "");
    let (code, out, err) = output(plain.agent().args(["check", "--json"]));
    assert_eq!(code, exit(Exit::Updated), "installed through nginx over HTTP\n{out}\n{err}\n{}", nginx.log());
    assert_eq!(plain.current().as_deref(), Some("1.0"));
    assert_eq!(fleet.release_state("gw-http", release).as_deref(), Some("committed"));

    let https = format!("https://127.0.0.1:{}/ferry/", nginx.https);
    let untrusting = Device::with_server(&fleet, "gw-no-ca", &https, "");
    let (code, out, err) = output(untrusting.agent().arg("check"));
    assert_eq!(
        code,
        exit(Exit::Unreachable),
        "the private CA's certificate is not trusted without ca_file\n{out}\n{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    let ca_file = format!("ca_file = \"{}\"", tls.join("ca.pem").display());
    let trusting = Device::with_server(&fleet, "gw-https", &https, &ca_file);
    let (code, out, err) = output(trusting.agent().args(["check", "--json"]));
    assert_eq!(code, exit(Exit::Updated), "installed through nginx over HTTPS\n{out}\n{err}\n{}", nginx.log());
    assert_eq!(trusting.current().as_deref(), Some("1.0"));
    assert_eq!(fleet.release_state("gw-https", release).as_deref(), Some("committed"));
}
