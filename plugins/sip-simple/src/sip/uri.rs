//! The SIP URI the hub subscribes to and publishes for, from a presence
//! entity as operators and directories write it: a SIP URI, a bare
//! `user@domain`, an extension, a presence URI (`pres:user@domain`,
//! RFC 3859), an IM URI (`im:user@domain`, RFC 3860) or a telephone number
//! (`tel:+15555550100`, RFC 3966).
//!
//! `pres:` and `im:` name a user and domain without a protocol. A SIP
//! watcher that holds one subscribes to the SIP URI with the same user and
//! domain (RFC 3856 §5; where RFC 3861's address resolution ends for a
//! domain served by SIP). Putting `sip:` in front instead would ask for the
//! user `pres` at host `alice@example.com`.

/// The SIP URI for `entity`; `domain` completes an entity without one.
///
/// - `sip:`/`sips:` (any case): as given, scheme lowercased.
/// - `pres:`/`im:` (any case): `sip:` with the same user and domain; the
///   URI's `?headers` are dropped.
/// - `tel:`: `sip:<number>@<domain>;user=phone`, the tel parameters kept in
///   the user part (RFC 3261 §19.1.6).
/// - any other scheme: as given (a URI the server may well route).
/// - `user@domain`: `sip:user@domain`; anything else (an extension):
///   `sip:<it>@<domain>`.
pub fn presence_target(entity: &str, domain: &str) -> String {
    let entity = entity.trim();
    let in_domain = |user: &str| {
        if user.contains('@') {
            format!("sip:{user}")
        } else {
            format!("sip:{user}@{domain}")
        }
    };
    let Some((scheme, rest)) = split_scheme(entity) else {
        return in_domain(entity);
    };
    match scheme.to_ascii_lowercase().as_str() {
        s @ ("sip" | "sips") => format!("{s}:{rest}"),
        "pres" | "im" => in_domain(rest.split('?').next().unwrap_or("")),
        "tel" => format!("sip:{rest}@{domain};user=phone"),
        _ => entity.to_string(),
    }
}

/// A presence URI reduced for comparison: without a `sip`, `sips`, `pres`
/// or `im` scheme, parameters and headers, its host lowercased. Two URIs
/// naming the same presentity in these forms give the same key (a list
/// server may name a resource `pres:` where the hub watches `sip:`).
pub fn entity_key(uri: &str) -> String {
    let uri = uri.trim();
    let rest = match split_scheme(uri) {
        Some((s, rest))
            if ["sip", "sips", "pres", "im"]
                .iter()
                .any(|k| s.eq_ignore_ascii_case(k)) =>
        {
            rest
        }
        _ => uri,
    };
    let rest = rest.split([';', '?']).next().unwrap_or("");
    match rest.rsplit_once('@') {
        Some((user, host)) => format!("{user}@{}", host.to_ascii_lowercase()),
        None => rest.to_ascii_lowercase(),
    }
}

/// `scheme:rest` when the text before the first colon is an RFC 3986
/// scheme (so `alice@example.com:5060` and `2001` have none).
fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some((scheme, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_and_im_uris_become_sip_uris() {
        for (given, want) in [
            ("pres:alice@example.com", "sip:alice@example.com"),
            ("PRES:alice@example.com", "sip:alice@example.com"),
            (" pres:alice@example.com ", "sip:alice@example.com"),
            ("im:alice@example.com", "sip:alice@example.com"),
            ("Im:alice@example.com", "sip:alice@example.com"),
            // RFC 3859 headers do not belong in a Request-URI.
            ("pres:alice@example.com?subject=hi", "sip:alice@example.com"),
            // No domain: ours, as for bare extensions.
            ("pres:2001", "sip:2001@pbx.example.com"),
        ] {
            assert_eq!(presence_target(given, "pbx.example.com"), want, "{given}");
        }
    }

    #[test]
    fn other_forms() {
        for (given, want) in [
            ("sip:alice@example.com", "sip:alice@example.com"),
            (
                "SIP:alice@example.com;transport=tcp",
                "sip:alice@example.com;transport=tcp",
            ),
            ("sips:alice@example.com", "sips:alice@example.com"),
            ("alice@example.com", "sip:alice@example.com"),
            ("2001", "sip:2001@pbx.example.com"),
            ("+15555550100", "sip:+15555550100@pbx.example.com"),
            (
                "tel:+15555550100",
                "sip:+15555550100@pbx.example.com;user=phone",
            ),
            (
                "tel:7042;phone-context=example.com",
                "sip:7042;phone-context=example.com@pbx.example.com;user=phone",
            ),
            ("urn:service:sos", "urn:service:sos"),
        ] {
            assert_eq!(presence_target(given, "pbx.example.com"), want, "{given}");
        }
    }

    #[test]
    fn keys_compare_forms_of_one_entity() {
        let key = entity_key("sip:alice@Example.COM;transport=udp");
        for same in [
            "pres:alice@example.com",
            "im:alice@EXAMPLE.com",
            "SIPS:alice@example.com",
            "alice@example.com",
            "pres:alice@example.com?subject=x",
        ] {
            assert_eq!(entity_key(same), key, "{same}");
        }
        assert_ne!(entity_key("sip:Alice@example.com"), key);
        assert_ne!(entity_key("sip:bob@example.com"), key);
    }
}
