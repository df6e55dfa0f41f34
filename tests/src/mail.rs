//! A real SMTP server on loopback for the e-mail tests: Debian's aiosmtpd (python3-aiosmtpd,
//! installed by `scripts/test`) delivering into a Maildir, read back with Python's own e-mail
//! parser.

use std::{
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::wait_for;

/// Debian's python3 (python3-aiosmtpd, which `scripts/test` installs).
pub const PYTHON: &str = "/usr/bin/python3";

/// An SMTP server on loopback that delivers every message into a Maildir.
pub struct Smtp {
    child: Child,
}

impl Smtp {
    /// Starts it on 127.0.0.1:`port`, delivering into `maildir`; returns once it listens.
    pub fn start(port: u16, maildir: &Path) -> Self {
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd: install python3-aiosmtpd (scripts/test does)");
        let up = wait_for(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()));
        assert!(up.is_some(), "aiosmtpd did not listen on {port}");
        Self { child }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages delivered into `maildir`, parsed by Python's e-mail package: headers, the text
/// and each attachment's name, type, size and first bytes.
pub fn delivered(maildir: &Path) -> Vec<Value> {
    const READ: &str = r#"
import json, mailbox, sys
from email import policy
from email.parser import BytesParser
out = []
for key, msg in mailbox.Maildir(sys.argv[1], create=False).items():
    m = BytesParser(policy=policy.default).parsebytes(msg.as_bytes())
    body = m.get_body(preferencelist=("plain",))
    atts = []
    for a in m.iter_attachments():
        data = a.get_payload(decode=True) or b""
        atts.append({"filename": a.get_filename(), "type": a.get_content_type(), "size": len(data),
                     "head": data[:5].decode("latin-1")})
    out.append({"to": str(m["To"]), "from": str(m["From"]), "reply_to": str(m["Reply-To"] or ""),
                "subject": str(m["Subject"]), "message_id": str(m["Message-ID"]),
                "text": body.get_content() if body else "", "attachments": atts})
out.sort(key=lambda m: m["to"])
print(json.dumps(out))
"#;
    if !maildir.join("new").exists() {
        return Vec::new();
    }
    let out = Command::new(PYTHON).args(["-c", READ]).arg(maildir).output().expect("python3");
    assert!(out.status.success(), "reading the Maildir: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A TCP port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The relay's environment that sends e-mail to 127.0.0.1:`port` from `ventas@dashoffice.test`.
pub fn relay_env(port: u16) -> Vec<(String, String)> {
    vec![
        ("DASHOFFICE_SMTP_URL".into(), format!("smtp://127.0.0.1:{port}")),
        ("DASHOFFICE_SMTP_FROM".into(), "ventas@dashoffice.test".into()),
    ]
}
