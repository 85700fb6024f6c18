//! Secrets never leave: the one place where text that may carry a secret is cleaned before it
//! reaches a log line, an error message, a stored outcome, a report or an HTTP response.
//!
//! - `urls`: the password of every `scheme://user:password@host` URL in a text, and every
//!   `password=` query parameter, become `***`.
//! - `secrets`: every occurrence of a configured secret value (an HTTP header value read from
//!   the environment, a DSN's password) becomes `***`.
//! - `text`: both.

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// A text with the password of every URL in it replaced by `***`: the `user:password@`
/// userinfo of `scheme://…` URLs and the value of `password=` query parameters.
pub fn urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let authority_start = at + 3;
        out.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        // The authority ends at the path, query, fragment or any character a URL would not
        // hold unquoted in a message.
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                let userinfo = &authority[..userinfo_end];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    query_passwords(&out)
}

/// `password=…` (and `sslpassword=…`) values replaced, up to the next `&` or blank.
fn query_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(at) = lower.find("password=") else {
            break;
        };
        let value_start = at + "password=".len();
        out.push_str(&rest[..value_start]);
        let after = &rest[value_start..];
        let end = after
            .find(|c: char| {
                matches!(c, '&' | '"' | '\'' | '`' | '<' | '>' | ')') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str(MASK);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A text with every occurrence of each (non-empty) secret replaced by `***`. Longer secrets
/// go first, so a secret that contains another is masked whole.
pub fn secrets(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in sorted {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// Both: URL passwords and the given secrets.
pub fn text(text: &str, known: &[String]) -> String {
    urls(&secrets(text, known))
}

/// The password of a URL (`scheme://user:password@…`), percent-decoded as a driver would see
/// it and as written, to be masked wherever either form shows up.
pub fn url_password(url: &str) -> Vec<String> {
    let Some(at) = url.find("://") else {
        return Vec::new();
    };
    let after = &url[at + 3..];
    let authority = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
    let Some(userinfo_end) = authority.rfind('@') else {
        return Vec::new();
    };
    let Some((_, password)) = authority[..userinfo_end].split_once(':') else {
        return Vec::new();
    };
    let mut out = vec![password.to_owned()];
    let decoded = percent_decode(password);
    if decoded != password {
        out.push(decoded);
    }
    out.retain(|p| !p.is_empty());
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_wherever_they_are() {
        assert_eq!(
            urls("store postgres://app:s3cr%40t@db:5432/runs?sslmode=require failed"),
            "store postgres://app:***@db:5432/runs?sslmode=require failed"
        );
        assert_eq!(
            urls("a postgresql://app@db/runs and http://x/y"),
            "a postgresql://app@db/runs and http://x/y"
        );
        assert_eq!(
            urls("(postgres://u:p@h/d) `postgres://u:p@h`"),
            "(postgres://u:***@h/d) `postgres://u:***@h`"
        );
        assert_eq!(
            urls("postgres://h/d?user=u&password=hunter2&sslmode=verify-full"),
            "postgres://h/d?user=u&password=***&sslmode=verify-full"
        );
        assert_eq!(urls("no url here"), "no url here");
        assert_eq!(urls("ünïcode://ü:p@h"), "ünïcode://ü:***@h");
    }

    #[test]
    fn configured_secrets_are_masked() {
        let known = vec!["tok".to_owned(), "Bearer tok-123".to_owned(), String::new()];
        assert_eq!(
            secrets("got Bearer tok-123 and tok", &known),
            "got *** and ***"
        );
        assert_eq!(
            url_password("postgres://u:p%40ss@h/d"),
            vec!["p%40ss".to_owned(), "p@ss".to_owned()]
        );
        assert!(url_password("postgres://u@h/d").is_empty());
    }
}
