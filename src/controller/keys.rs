//! Keys and signatures: approvers and initiators sign what they approve or start with their
//! OpenSSH ed25519 keys (the SSH signature format, namespace `billshadow`, which
//! `ssh-keygen -Y sign -n billshadow` also makes), and the controller signs every audit record
//! and the chain's head with its own key, held outside the store.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

/// The SSH signature namespace of every billshadow signature.
pub(crate) const NAMESPACE: &str = "billshadow";

/// The environment variable naming the controller's private key file.
pub(crate) const CONTROLLER_KEY_ENV: &str = "BILLSHADOW_CONTROLLER_KEY";

/// What an approver signs: the cell, the step, the evidence and the policy it was judged by.
pub(crate) fn approval_message(cell: &str, step: &str, evidence: &str, policy: &str) -> String {
    format!(
        "billshadow approval v1\ncell {cell}\nstep {step}\nevidence {evidence}\npolicy {policy}\n"
    )
}

/// What the initiator of a step that needs approvals signs.
pub(crate) fn advance_message(cell: &str, step: &str, evidence: &str, policy: &str) -> String {
    format!(
        "billshadow advance v1\ncell {cell}\nstep {step}\nevidence {evidence}\npolicy {policy}\n"
    )
}

/// An OpenSSH ed25519 public key (`ssh-ed25519 AAAA… comment`).
pub(crate) fn parse_public(text: &str) -> Result<PublicKey, String> {
    let key = PublicKey::from_openssh(text.trim())
        .map_err(|e| format!("not an OpenSSH public key ({e})"))?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(format!(
            "a {} key; billshadow takes ssh-ed25519 keys",
            key.algorithm()
        ));
    }
    Ok(key)
}

/// A key's SHA-256 fingerprint, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Reads an unencrypted OpenSSH ed25519 private key. Its text never appears in an error.
pub(crate) fn read_private(path: &Path) -> anyhow::Result<PrivateKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key {}", path.display()))?;
    let key = PrivateKey::from_openssh(text.trim()).map_err(|_| {
        anyhow!(
            "{} is not an OpenSSH private key (a `-----BEGIN OPENSSH PRIVATE KEY-----` file)",
            path.display()
        )
    })?;
    if key.is_encrypted() {
        bail!(
            "{} is protected by a passphrase; sign with `ssh-keygen -Y sign -n {NAMESPACE} -f {}` and pass --signature",
            path.display(),
            path.display()
        );
    }
    if key.algorithm() != Algorithm::Ed25519 {
        bail!("{} is not an ed25519 key", path.display());
    }
    Ok(key)
}

/// Signs `message` (armored SSH signature).
pub(crate) fn sign(key: &PrivateKey, message: &str) -> anyhow::Result<String> {
    let sig = key
        .sign(NAMESPACE, HashAlg::Sha512, message.as_bytes())
        .map_err(|e| anyhow!("cannot sign: {e}"))?;
    sig.to_pem(LineEnding::LF)
        .map_err(|e| anyhow!("cannot encode the signature: {e}"))
}

/// The key an armored SSH signature of `message` was made with, if the signature verifies.
pub(crate) fn signer(signature: &str, message: &str) -> Result<PublicKey, String> {
    let sig = SshSig::from_pem(signature.trim())
        .map_err(|_| "not an SSH signature (`-----BEGIN SSH SIGNATURE-----`)".to_owned())?;
    let key = PublicKey::from(sig.public_key().clone());
    key.verify(NAMESPACE, message.as_bytes(), &sig)
        .map_err(|_| "the signature does not verify: it was not made over this message (cell, step, evidence, policy) with the key it names".to_owned())?;
    Ok(key)
}

/// A new ed25519 key pair, written as `path` (private, mode 0600) and `path.pub`.
pub(crate) fn generate(path: &Path, comment: &str) -> anyhow::Result<PublicKey> {
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)
        .map_err(|e| anyhow!("cannot generate a key: {e}"))?;
    key.set_comment(comment);
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| anyhow!("cannot encode the key: {e}"))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| anyhow!("cannot encode the key: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    std::io::Write::write_all(&mut file, private.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let public_path = format!("{}.pub", path.display());
    std::fs::write(&public_path, format!("{public}\n"))
        .with_context(|| format!("cannot write {public_path}"))?;
    Ok(key.public_key().clone())
}

/// The controller's signing key: from `flag`, else the file `BILLSHADOW_CONTROLLER_KEY` names.
/// It must match the policy's `[audit] public_key`; without one in the policy, records are
/// hash-chained but unsigned.
pub(crate) fn controller_key(
    flag: Option<&Path>,
    expected: Option<&PublicKey>,
) -> anyhow::Result<Option<PrivateKey>> {
    let Some(expected) = expected else {
        return Ok(None);
    };
    let path = match flag {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(CONTROLLER_KEY_ENV) {
            Some(p) => p.into(),
            None => bail!(
                "the policy's [audit] public_key makes every change signed: pass --controller-key FILE or set {CONTROLLER_KEY_ENV}"
            ),
        },
    };
    let key = read_private(&path)?;
    if key.public_key().key_data() != expected.key_data() {
        bail!(
            "the controller key {} is not the policy's [audit] public_key ({})",
            path.display(),
            fingerprint(expected)
        );
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_over_its_own_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let public = generate(&path, "alice").unwrap();
        let key = read_private(&path).unwrap();
        let message = approval_message("p1/eu", "canary:5", "abc", "def");
        let sig = sign(&key, &message).unwrap();
        assert_eq!(
            signer(&sig, &message).unwrap().key_data(),
            public.key_data()
        );
        let other = approval_message("p1/eu", "cutover", "abc", "def");
        assert!(signer(&sig, &other).is_err());
        assert!(signer("nonsense", &message).is_err());
        let text = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
        assert_eq!(parse_public(&text).unwrap().key_data(), public.key_data());
    }
}
