//! The school's certificate authority for TLS interception: created once by `haven ca init`
//! (the private key readable by its owner only), installed on the school's devices, and used by
//! the proxy to mint a certificate for each site it decrypts. Minted certificates are cached,
//! with a bound.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why the CA could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// `haven ca init` on a directory that already has a CA.
    #[error("a CA already exists in {0} (devices trust it; replacing it means reinstalling it everywhere: use --force)")]
    Exists(PathBuf),
    /// No CA yet.
    #[error("no CA in {0}: run `haven ca init`")]
    Missing(PathBuf),
    /// Reading or writing its files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
    /// A file that does not hold what it should.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

const KEY_FILE: &str = "ca.key";
const CERT_FILE: &str = "ca.crt";
const NAME_FILE: &str = "ca.name";
/// Minted certificates kept at once.
const CACHE: usize = 2048;
/// Age at which a cached certificate is minted again.
const REMINT: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// The CA's distinguished name: rebuilt the same way at every load, so that the certificates
/// it signs name it exactly as its own certificate does.
fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{name} web filter CA (Haven)"));
    dn.push(DnType::OrganizationName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The current year, for validity periods.
fn this_year() -> i32 {
    i32::from(crate::clock::zoned().year())
}

/// A random serial number: browsers refuse two different certificates with one serial.
fn serial() -> SerialNumber {
    let r = std::collections::hash_map::RandomState::new();
    let nanos = crate::clock::since_epoch().as_nanos();
    let mut bytes = r.hash_one(nanos).to_be_bytes().to_vec();
    bytes.extend_from_slice(&r.hash_one(nanos ^ 0x5a5a).to_be_bytes());
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

/// What `init` does with a CA already in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuses to replace it (`CaError::Exists`).
    Keep,
    /// Replaces it (`haven ca init --force`): devices must install the new certificate.
    Replace,
}

/// Creates the school's CA in `dir`: `ca.key` (mode 0600), `ca.crt` and `ca.name`. Refuses to
/// replace an existing one unless `existing` says so.
pub fn init(dir: &Path, school: &str, existing: Existing) -> Result<SchoolCa, CaError> {
    let key_path = dir.join(KEY_FILE);
    if key_path.exists() && existing == Existing::Keep {
        return Err(CaError::Exists(dir.to_owned()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key = KeyPair::generate()?;
    let mut params = ca_params(school);
    let year = this_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    params.serial_number = Some(serial());
    let cert = params.self_signed(&key)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    let cert_path = dir.join(CERT_FILE);
    std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
    let name_path = dir.join(NAME_FILE);
    std::fs::write(&name_path, school).map_err(io(&name_path))?;
    load(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(io(path))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    std::fs::write(path, bytes).map_err(io(path))
}

/// Loads the CA from `dir`.
pub fn load(dir: &Path) -> Result<SchoolCa, CaError> {
    let key_path = dir.join(KEY_FILE);
    if !key_path.exists() {
        return Err(CaError::Missing(dir.to_owned()));
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(io(p));
    let invalid = |p: &Path, m: String| CaError::Invalid {
        path: p.to_owned(),
        message: m,
    };
    let key = KeyPair::from_pem(&read(&key_path)?)
        .map_err(|e| invalid(&key_path, format!("not a private key: {e}")))?;
    let cert_path = dir.join(CERT_FILE);
    let cert_pem = read(&cert_path)?;
    let cert_der = {
        use rustls::pki_types::pem::PemObject as _;
        CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| invalid(&cert_path, format!("not a certificate: {e}")))?
    };
    let name = read(&dir.join(NAME_FILE))?;
    Ok(SchoolCa {
        issuer: Issuer::new(ca_params(name.trim_end_matches('\n')), key),
        cert_pem,
        cert_der,
        cache: Mutex::new((HashMap::new(), VecDeque::new())),
    })
}

type Minted = Arc<rustls::sign::CertifiedKey>;
/// Minted certificates by host, when minted, and the order they were minted in.
type MintCache = (
    HashMap<String, (Minted, std::time::Instant)>,
    VecDeque<String>,
);

/// A loaded CA, ready to mint.
pub struct SchoolCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    cache: Mutex<MintCache>,
}

impl std::fmt::Debug for SchoolCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchoolCa").finish_non_exhaustive()
    }
}

impl SchoolCa {
    /// The CA certificate, PEM, for devices to install.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for `host` (a name or an address) signed by the CA, with the CA's
    /// certificate after it; minted once and then cached.
    pub fn certified_key(&self, host: &str) -> Result<Minted, CaError> {
        let now = crate::clock::instant();
        if let Some((k, _)) = self.cache.lock().ok().and_then(|c| {
            c.0.get(host)
                .filter(|(_, at)| now.duration_since(*at) < REMINT)
                .cloned()
        }) {
            return Ok(k);
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.to_owned()
                    .try_into()
                    .map_err(|e: rcgen::Error| CaError::Certificate(e))?,
            ),
        }];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        // Valid from yesterday for 90 days (browsers refuse long-lived leaf certificates);
        // cached ones are minted again after 30 days.
        let today = crate::clock::zoned().date();
        params.not_before = rcgen::date_time_ymd(
            i32::from(today.year()),
            today.month() as u8,
            today.day() as u8,
        ) - std::time::Duration::from_secs(86_400);
        params.not_after = params.not_before + std::time::Duration::from_secs(91 * 86_400);
        params.serial_number = Some(serial());
        let cert = params.signed_by(&key, &self.issuer)?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&private).map_err(|e| {
            CaError::Invalid {
                path: PathBuf::from(host),
                message: e.to_string(),
            }
        })?;
        let minted = Arc::new(rustls::sign::CertifiedKey::new(chain, signing));
        if let Ok(mut c) = self.cache.lock() {
            let (map, order) = &mut *c;
            if map.len() >= CACHE {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
            if map.insert(host.to_owned(), (minted.clone(), now)).is_none() {
                order.push_back(host.to_owned());
            }
        }
        Ok(minted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_refuses_to_replace_and_keeps_the_key_private() {
        let dir = std::env::temp_dir().join(format!("haven-ca-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = init(&dir, "Demo Primary School", Existing::Keep).expect("init");
        assert!(ca
            .certificate_pem()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(matches!(
            init(&dir, "Demo Primary School", Existing::Keep),
            Err(CaError::Exists(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = load(&dir).expect("load");
        let a = loaded.certified_key("www.example.com").expect("mint");
        let b = loaded.certified_key("www.example.com").expect("cached");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.cert.len(), 2, "leaf then CA");
        assert!(loaded.certified_key("192.0.2.7").is_ok());
        std::fs::write(dir.join(KEY_FILE), "not a key").expect("write");
        assert!(matches!(load(&dir), Err(CaError::Invalid { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
