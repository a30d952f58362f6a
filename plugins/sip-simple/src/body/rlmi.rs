//! RFC 4662 resource lists: the RLMI document (`application/rlmi+xml`) and
//! the `multipart/related` NOTIFY body of a resource list server.
//!
//! The RLMI root's `version` and `fullState` are required: without them the
//! list cannot be ordered or merged. Its `uri` is not: some servers
//! (BroadWorks BLF lists among them) leave it out, and nothing here needs
//! it (the subscription's dialog names the list). Inside the list the
//! parser is lenient, since one odd entry should not hide the state of the
//! others: a `<resource>` without `uri` and an `<instance>` with an unknown
//! `state` are skipped.

use super::dialog_info::{DialogInfo, parse_dialog_info};
use super::multipart::{Multipart, MultipartKind, parse_multipart, strip_cid};
use super::pidf::{Pidf, parse_pidf};
use super::xml::{Element, ns, parse_document};
use super::{BodyError, check_size, clip, invalid, parse_xs_bool};

/// A parsed RLMI `<list>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlmi {
    /// The list URI, when the server gives one.
    pub uri: Option<String>,
    /// The list version; increments per NOTIFY.
    pub version: u64,
    /// This document holds every resource (not only the changed ones).
    pub full_state: bool,
    /// The resources in document order.
    pub resources: Vec<Resource>,
}

/// One `<resource>` of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource URI.
    pub uri: String,
    /// The first `<name>`, when present and not empty.
    pub name: Option<String>,
    /// Its back-end subscriptions.
    pub instances: Vec<Instance>,
}

/// One `<instance>`: the RLS's subscription to the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The instance `id`.
    pub id: String,
    /// The subscription state.
    pub state: InstanceState,
    /// The Subscription-State reason (for terminated instances).
    pub reason: Option<String>,
    /// Content-ID of the MIME part with the resource's state, without `<>`.
    pub cid: Option<String>,
}

/// The `state` of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Subscribed; the state travels in the part named by `cid`.
    Active,
    /// Waiting for authorization.
    Pending,
    /// Ended (see `reason`).
    Terminated,
}

/// Parses an `application/rlmi+xml` document.
pub fn parse_rlmi(xml: &[u8]) -> Result<Rlmi, BodyError> {
    let root = parse_document(xml)?;
    if !root.is(ns::RLMI, "list") {
        return Err(BodyError::UnexpectedRoot {
            expected: "{urn:ietf:params:xml:ns:rlmi}list",
            found: clip(&root.qualified(), 128),
        });
    }
    let uri = root
        .attr("uri")
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| clip(u, 512));
    let version_text = root.attr("version").ok_or(BodyError::Missing {
        element: "list",
        item: "version attribute",
    })?;
    let version = version_text
        .trim()
        .parse::<u64>()
        .map_err(|_| invalid("list version", version_text))?;
    let full_text = root.attr("fullState").ok_or(BodyError::Missing {
        element: "list",
        item: "fullState attribute",
    })?;
    let full_state = parse_xs_bool(full_text).ok_or_else(|| invalid("fullState", full_text))?;
    let resources = root
        .children_named(ns::RLMI, "resource")
        .filter_map(parse_resource)
        .collect();
    Ok(Rlmi {
        uri,
        version,
        full_state,
        resources,
    })
}

fn parse_resource(el: &Element) -> Option<Resource> {
    let uri = el.attr("uri").map(str::trim).filter(|u| !u.is_empty())?;
    let name = el
        .children_named(ns::RLMI, "name")
        .map(|n| n.text_trimmed())
        .find(|n| !n.is_empty())
        .map(|n| clip(n, 256));
    let instances = el
        .children_named(ns::RLMI, "instance")
        .filter_map(|i| {
            let state = match i.attr("state")?.trim().to_ascii_lowercase().as_str() {
                "active" => InstanceState::Active,
                "pending" => InstanceState::Pending,
                "terminated" => InstanceState::Terminated,
                _ => return None,
            };
            Some(Instance {
                id: clip(i.attr("id").unwrap_or("").trim(), 256),
                state,
                reason: i
                    .attr("reason")
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(|r| clip(r, 64)),
                cid: i
                    .attr("cid")
                    .map(strip_cid)
                    .filter(|c| !c.is_empty())
                    .map(|c| clip(c, 256)),
            })
        })
        .collect();
    Some(Resource {
        uri: clip(uri, 512),
        name,
        instances,
    })
}

/// The state of one resource instance in an RLS NOTIFY.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceBody {
    /// Active, with a PIDF part.
    Pidf(Pidf),
    /// Active, with a dialog-info part.
    DialogInfo(DialogInfo),
    /// The back-end subscription ended.
    Terminated {
        /// The Subscription-State reason (`noresource`, `rejected`, ...).
        reason: Option<String>,
    },
    /// Waiting for authorization.
    Pending,
    /// Active, with a part that is empty: the server has no state for the
    /// resource (nothing published), as in a NOTIFY without a body.
    Empty,
    /// No state in this NOTIFY: an active instance without `cid` (its
    /// state is not included, as in a partial notification), or a
    /// resource without any instance (the server has no state for it:
    /// Kamailio's rls lists a member so while its back-end NOTIFYs carry
    /// no body).
    NoState,
    /// The part is missing, of a type this crate does not read (e.g. a
    /// nested list or xpidf: [`BodyError::UnexpectedContentType`]), or could
    /// not be parsed; the rest of the NOTIFY is still usable.
    Error(BodyError),
}

/// What one instance of a resource says in an RLS NOTIFY.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceState {
    /// The resource URI.
    pub uri: String,
    /// The instance id (the back-end subscription; versions of the
    /// resource's documents count within it). `None` for a resource
    /// without instances.
    pub instance: Option<String>,
    pub body: ResourceBody,
}

/// A parsed RLS NOTIFY body.
#[derive(Debug, Clone, PartialEq)]
pub struct RlsNotify {
    /// The RLMI document (root part).
    pub list: Rlmi,
    /// One entry per instance, in document order (a resource with several
    /// instances appears several times; one without instances appears once,
    /// as [`ResourceBody::NoState`]).
    pub resources: Vec<ResourceState>,
}

/// Parses the `multipart/related` body of an RLS NOTIFY.
///
/// The root part is the one named by the `start` parameter, else the first
/// part; it must be RLMI, or the whole body is an error. Each active
/// instance's `cid` is followed to its part; a part that is missing or fails
/// to parse yields [`ResourceBody::Error`] for that resource only.
pub fn parse_rls_notify(content_type: &str, body: &[u8]) -> Result<RlsNotify, BodyError> {
    check_size(body)?;
    let mp: Multipart = parse_multipart(content_type, body)?;
    if !matches!(mp.kind, MultipartKind::Related) {
        return Err(BodyError::UnexpectedContentType(clip(content_type, 128)));
    }
    let root = mp
        .root()
        .ok_or_else(|| BodyError::Multipart("no root part".into()))?;
    let list = parse_rlmi(&root.body)?;
    let mut resources = Vec::new();
    for res in &list.resources {
        if res.instances.is_empty() {
            resources.push(ResourceState {
                uri: res.uri.clone(),
                instance: None,
                body: ResourceBody::NoState,
            });
        }
        for inst in &res.instances {
            let body = match inst.state {
                InstanceState::Pending => ResourceBody::Pending,
                InstanceState::Terminated => ResourceBody::Terminated {
                    reason: inst.reason.clone(),
                },
                InstanceState::Active => match &inst.cid {
                    None => ResourceBody::NoState,
                    Some(cid) => match mp.part_by_cid(cid) {
                        None => ResourceBody::Error(BodyError::MissingPart { cid: cid.clone() }),
                        Some(part) => resource_body(&part.media_type(), &part.body),
                    },
                },
            };
            resources.push(ResourceState {
                uri: res.uri.clone(),
                instance: Some(inst.id.clone()),
                body,
            });
        }
    }
    Ok(RlsNotify { list, resources })
}

fn resource_body(media_type: &str, body: &[u8]) -> ResourceBody {
    // Kamailio's rls passes a back-end NOTIFY without a body on as an empty
    // part (with the back-end's Content-Type, or none).
    if body.iter().all(u8::is_ascii_whitespace) {
        return ResourceBody::Empty;
    }
    let result = match media_type {
        "application/pidf+xml" => parse_pidf(body).map(ResourceBody::Pidf),
        "application/dialog-info+xml" => parse_dialog_info(body).map(ResourceBody::DialogInfo),
        other => Err(BodyError::UnexpectedContentType(clip(other, 128))),
    };
    result.unwrap_or_else(ResourceBody::Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::fixtures as fx;
    use presence_connector_sdk::{Activity, Availability, LineState};

    #[test]
    fn facts_rlmi_example() {
        let n = parse_rls_notify(fx::RLS_CONTENT_TYPE, fx::RLS_BODY.as_bytes()).unwrap();
        assert_eq!(
            n.list.uri.as_deref(),
            Some("sip:team-list@pres.example.com")
        );
        assert_eq!(n.list.version, 3);
        assert!(!n.list.full_state);
        assert_eq!(n.list.resources.len(), 2);
        assert_eq!(
            n.list.resources[0].instances[0],
            Instance {
                id: "x7".into(),
                state: InstanceState::Active,
                reason: None,
                cid: Some("alice1@hub".into()),
            }
        );
        assert_eq!(n.resources.len(), 2);
        let alice = &n.resources[0];
        assert_eq!(alice.uri, "sip:alice@example.com");
        assert_eq!(alice.instance.as_deref(), Some("x7"));
        match &alice.body {
            ResourceBody::Pidf(p) => {
                assert_eq!(p.entity, "sip:alice@example.com");
                // The example's PIDF holds only a placeholder.
                assert_eq!(p.rich.availability, Availability::Unknown);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            n.resources[1],
            ResourceState {
                uri: "sip:bob@example.com".into(),
                instance: Some("x8".into()),
                body: ResourceBody::Terminated {
                    reason: Some("noresource".into())
                }
            }
        );
        // The same body with CRLF line ends.
        let crlf = fx::RLS_BODY.replace('\n', "\r\n");
        let n2 = parse_rls_notify(fx::RLS_CONTENT_TYPE, crlf.as_bytes()).unwrap();
        assert_eq!(n2.resources, n.resources);
    }

    #[test]
    fn kamailio_full_state_mixed_resources() {
        let n = parse_rls_notify(
            fx::KAMAILIO_RLS_CONTENT_TYPE,
            fx::KAMAILIO_RLS_BODY.as_bytes(),
        )
        .unwrap();
        assert!(n.list.full_state);
        assert_eq!(n.list.version, 0);
        assert_eq!(n.list.resources[0].name.as_deref(), Some("Alice"));
        let by_uri = |u: &str| &n.resources.iter().find(|r| r.uri == u).unwrap().body;
        match by_uri("sip:alice@example.com") {
            ResourceBody::Pidf(p) => {
                assert_eq!(p.rich.availability, Availability::Busy);
                assert_eq!(p.rich.activity, Some(Activity::InAMeeting));
            }
            other => panic!("unexpected {other:?}"),
        }
        match by_uri("sip:2001@example.com") {
            ResourceBody::DialogInfo(d) => assert_eq!(d.line_state(), LineState::Ringing),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(by_uri("sip:carol@example.com"), &ResourceBody::Pending);
        assert!(matches!(
            by_uri("sip:dave@example.com"),
            ResourceBody::Error(BodyError::Truncated | BodyError::Xml(_))
        ));
        assert_eq!(
            by_uri("sip:erin@example.com"),
            &ResourceBody::Error(BodyError::MissingPart {
                cid: "erin@pres".into()
            })
        );
        // No instance: the server has nothing for frank yet.
        assert_eq!(by_uri("sip:frank@example.com"), &ResourceBody::NoState);
        assert_eq!(n.resources.len(), 6);
    }

    #[test]
    fn lenient_inside_strict_at_root() {
        let doc = br#"<r:list xmlns:r="urn:ietf:params:xml:ns:rlmi" uri="sip:l@x" version="7" fullState="1">
            <r:resource><r:instance id="a" state="active"/></r:resource>
            <r:resource uri="sip:b@x"><r:name/><r:name>Bee</r:name>
              <r:instance id="b1" state="weird"/>
              <r:instance id="b2" state="ACTIVE" cid="&lt;b2@x&gt;"/>
              <r:instance state="terminated" reason="  "/>
            </r:resource>
            <other xmlns="urn:example"/>
        </r:list>"#;
        let l = parse_rlmi(doc).unwrap();
        assert!(l.full_state);
        assert_eq!(l.resources.len(), 1);
        let r = &l.resources[0];
        assert_eq!(r.name.as_deref(), Some("Bee"));
        assert_eq!(r.instances.len(), 2);
        assert_eq!(r.instances[0].cid.as_deref(), Some("b2@x"));
        assert_eq!(r.instances[1].id, "");
        assert_eq!(r.instances[1].reason, None);

        let ns = r#"xmlns="urn:ietf:params:xml:ns:rlmi""#;
        // The list URI is optional (BroadWorks leaves it out); blank is none.
        for (doc, uri) in [
            (
                format!(r#"<list {ns} version="1" fullState="true"/>"#),
                None,
            ),
            (
                format!(r#"<list {ns} uri=" " version="1" fullState="true"/>"#),
                None,
            ),
            (
                format!(r#"<list {ns} uri=" sip:l@x " version="1" fullState="true"/>"#),
                Some("sip:l@x"),
            ),
        ] {
            assert_eq!(
                parse_rlmi(doc.as_bytes()).unwrap().uri.as_deref(),
                uri,
                "{doc}"
            );
        }
        for bad in [
            format!(r#"<list {ns} fullState="true"/>"#),
            format!(r#"<list {ns} uri="sip:l@x" fullState="true"/>"#),
            format!(r#"<list {ns} uri="sip:l@x" version="x" fullState="true"/>"#),
            format!(r#"<list {ns} uri="sip:l@x" version="1"/>"#),
            format!(r#"<list {ns} uri="sip:l@x" version="1" fullState="yes"/>"#),
            r#"<list uri="sip:l@x" version="1" fullState="true"/>"#.to_string(),
            format!(r#"<list {ns} uri="sip:l@x" version="1" fullState="true"><resource>"#),
        ] {
            assert!(parse_rlmi(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn broadworks_blf_list_reads_dialog_info_per_resource() {
        use crate::body::dialog_info::Direction;
        use crate::corpus as c;
        let n = parse_rls_notify(c::BLF_CONTENT_TYPE, c::BLF_FULL.as_bytes()).unwrap();
        assert_eq!(n.list.uri, None);
        assert!(n.list.full_state);
        let [idle, ringing] = &n.resources[..] else {
            panic!("{n:?}")
        };
        assert_eq!(idle.uri, "sip:4605@as.example.com");
        assert_eq!(idle.instance.as_deref(), Some("kfS1ZwSxTk"));
        let ResourceBody::DialogInfo(d) = &idle.body else {
            panic!("{idle:?}")
        };
        assert!(d.dialogs.is_empty());
        assert_eq!(d.line_state(), LineState::Idle);
        let ResourceBody::DialogInfo(d) = &ringing.body else {
            panic!("{ringing:?}")
        };
        assert_eq!(d.line_state(), LineState::Ringing);
        assert_eq!(d.dialogs[0].direction, Some(Direction::Recipient));
        assert_eq!(d.dialogs[0].remote_display.as_deref(), Some("Caller 4609"));

        // Partial: 4605 listed without cid, 4607 answered.
        let n = parse_rls_notify(c::BLF_CONTENT_TYPE, c::BLF_PARTIAL.as_bytes()).unwrap();
        assert!(!n.list.full_state);
        assert_eq!(n.resources[0].body, ResourceBody::NoState);
        let ResourceBody::DialogInfo(d) = &n.resources[1].body else {
            panic!("{n:?}")
        };
        assert_eq!(d.line_state(), LineState::InCall);
    }

    #[test]
    fn blf_list_neighbours() {
        use crate::corpus as c;
        let n =
            parse_rls_notify(c::BLF_NEIGHBOURS_CONTENT_TYPE, c::BLF_NEIGHBOURS.as_bytes()).unwrap();
        assert_eq!(n.list.uri, None);
        let body = |user: &str| {
            &n.resources
                .iter()
                .find(|r| r.uri.contains(user))
                .unwrap()
                .body
        };
        // An empty part: nothing published, not an error.
        assert_eq!(body("4611"), &ResourceBody::Empty);
        assert!(matches!(
            body("4612"),
            ResourceBody::Error(BodyError::InvalidValue { .. })
        ));
        assert!(matches!(body("4613"), ResourceBody::Pidf(_)));
        assert_eq!(
            body("4614"),
            &ResourceBody::Terminated {
                reason: Some("rejected".into())
            }
        );
        assert_eq!(body("4615"), &ResourceBody::Pending);
        let ResourceBody::DialogInfo(held) = body("4616") else {
            panic!()
        };
        assert_eq!(held.line_state(), LineState::OnHold);
        let ResourceBody::DialogInfo(calling) = body("4617") else {
            panic!()
        };
        assert!(!calling.full);
        assert_eq!(calling.line_state(), LineState::Dialing);
        assert_eq!(body("4619"), &ResourceBody::NoState);
        assert_eq!(n.resources.len(), 8);
    }

    #[test]
    fn notify_level_errors_and_fallbacks() {
        // start names no part: the first part is the root.
        let ct = r#"multipart/related;type="application/rlmi+xml";start="<nope>";boundary=b"#;
        let body = "--b\r\nContent-Type: application/rlmi+xml\r\n\r\n<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"sip:l@x\" version=\"1\" fullState=\"false\"><resource uri=\"sip:a@x\"><instance id=\"1\" state=\"active\" cid=\"p\"/></resource></list>\r\n--b\r\nContent-ID: <p>\r\nContent-Type: application/xpidf+xml\r\n\r\n<presence/>\r\n--b--\r\n";
        let n = parse_rls_notify(ct, body.as_bytes()).unwrap();
        assert_eq!(
            n.resources[0].body,
            ResourceBody::Error(BodyError::UnexpectedContentType(
                "application/xpidf+xml".into()
            ))
        );
        // Root part not RLMI, not multipart/related, broken multipart.
        let bad_root = body.replace("<list", "<lost").replace("</list>", "</lost>");
        assert!(parse_rls_notify(ct, bad_root.as_bytes()).is_err());
        assert!(matches!(
            parse_rls_notify("multipart/mixed;boundary=b", body.as_bytes()),
            Err(BodyError::UnexpectedContentType(_))
        ));
        assert!(parse_rls_notify("application/rlmi+xml", body.as_bytes()).is_err());
        assert!(parse_rls_notify(ct, b"garbage").is_err());
        let cut = &fx::RLS_BODY[..200];
        assert!(parse_rls_notify(fx::RLS_CONTENT_TYPE, cut.as_bytes()).is_err());
    }
}
