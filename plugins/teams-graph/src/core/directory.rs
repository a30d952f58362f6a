//! The tenant's user directory, reported to the hub (`report.directory`) so
//! it can map users by email and create users from it.
//!
//! `GET /users?$select=id,displayName,mail,userPrincipalName&$top=999`
//! (Graph v1.0 list users; 999 is the most `$top` allows), then each
//! `@odata.nextLink` until a page has none. Each page is reported as it
//! arrives, the last one `complete`. An entry's endpoint is the user
//! principal name (what the `teams-upn` endpoint kind watches), its email
//! is `mail` (none where the account has no mailbox address), its display
//! name `displayName`. The read runs once signed in and again every 12
//! hours.
//!
//! Pages go one at a time, each counted against the look-up budget
//! ([`PAGE_COST`] look-ups), behind the same gate as every Graph call
//! (429/503 with `Retry-After`, back-off when Graph is unreachable). A page
//! that fails is asked again; a read never starts over half-way, so the hub
//! never holds a doubled or half directory as if it were whole. A 403 (no
//! User.Read.All / User.ReadBasic.All) makes the connector `forbidden`
//! naming the permission; presence keeps flowing, and the read is tried
//! again after 1 minute, then 2, 4 ... up to 12 hours.

use presence_connector_sdk::DirectoryEntry;

use super::backoff::Refusal;
use super::lookups::{LOOKUP_BUDGET, LOOKUP_WINDOW_MS};
use super::{Action, Core, Level, OpClass, Outcome, Purpose, TimerKey};
use crate::wire::{self, DirectoryUser, UserPage};

/// The directory is read again this often.
pub(super) const DIRECTORY_EVERY_MS: u64 = 12 * 3_600_000;
/// First wait before a refused or unreadable page is asked again (it
/// doubles with each refusal in a row, up to [`DIRECTORY_EVERY_MS`]).
pub(super) const DIRECTORY_RETRY_MS: u64 = 60_000;
/// Look-ups of the budget one page of the list costs: a list is dearer to
/// Graph's directory than a single user.
pub(super) const PAGE_COST: usize = 2;

/// Which page of the user list to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Page {
    First,
    /// An `@odata.nextLink`, as the path below the Graph base.
    Next(String),
}

/// The state of the directory read.
#[derive(Debug, Default)]
pub(super) struct DirRead {
    /// The page to ask for once `not_before` has passed; `None` while a
    /// page is in flight or no read is due.
    pub want: Option<Page>,
    pub not_before: u64,
    pub inflight: bool,
    /// Pages and users of the read under way.
    pub pages: u32,
    pub users: usize,
    /// Graph refused the last attempt: the next waits longer.
    pub refused: Option<Refusal>,
    /// Users in the last whole read.
    pub last_count: Option<usize>,
}

/// The hub's view of one user: endpoint = UPN (else the object id).
fn entry(u: DirectoryUser) -> DirectoryEntry {
    let some = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    DirectoryEntry {
        endpoint: some(u.user_principal_name).unwrap_or_else(|| super::norm_id(&u.id)),
        email: some(u.mail),
        display_name: some(u.display_name),
        extension: None,
    }
}

impl Core {
    /// A whole read is due now (at start, when the setting is on).
    pub(super) fn directory_due(&mut self) {
        if self.s.directory && !self.dir.inflight && self.dir.want.is_none() {
            self.dir.want = Some(Page::First);
            self.dir.not_before = 0;
        }
    }

    /// Ask for the wanted page if it may go: its time has come, no page is
    /// in flight, and the look-up budget has room.
    pub(super) fn pump_directory(&mut self, token: &str, now: u64) {
        if self.dir.inflight || now < self.dir.not_before {
            return;
        }
        let Some(page) = self.dir.want.clone() else {
            return;
        };
        let used = self
            .lookup_log
            .iter()
            .filter(|t| now.saturating_sub(**t) < LOOKUP_WINDOW_MS)
            .count();
        if LOOKUP_BUDGET.saturating_sub(used) < PAGE_COST {
            let oldest = self.lookup_log.front().copied().unwrap_or(now);
            let wait = (oldest + LOOKUP_WINDOW_MS).saturating_sub(now).max(1);
            self.set_timer(TimerKey::LookupBudget, wait);
            return;
        }
        let path = match &page {
            Page::First => format!(
                "/users?$select=id,displayName,mail,userPrincipalName&$top={}",
                wire::MAX_USERS_PAGE
            ),
            Page::Next(path) => path.clone(),
        };
        let req = self.graph_request("GET", &path, None, token);
        for _ in 0..PAGE_COST {
            self.lookup_log.push_back(now);
        }
        self.dir.want = None;
        self.dir.inflight = true;
        self.send(Purpose::Directory(page), req);
    }

    /// A page did not go through (throttled, unreachable, a refused
    /// token): asked again once the gate opens.
    pub(super) fn directory_again(&mut self, page: Page) {
        self.dir.inflight = false;
        self.dir.want = Some(page);
    }

    /// Ask for `page` again in a while, later with each failure in a row.
    fn directory_later(&mut self, page: Page, now: u64) -> u64 {
        let r = Refusal::strike(
            self.dir.refused,
            now,
            DIRECTORY_RETRY_MS,
            DIRECTORY_EVERY_MS,
        );
        self.dir.refused = Some(r);
        self.dir.want = Some(page);
        self.dir.not_before = r.until;
        self.set_timer(TimerKey::Directory, r.until - now);
        (r.until - now) / 1000
    }

    pub(super) fn on_directory(&mut self, page: Page, outcome: Outcome, now: u64) {
        self.dir.inflight = false;
        let what = "list the tenant's users (directory)";
        match outcome {
            Outcome::Ok(resp) => {
                let parsed = serde_json::from_slice::<UserPage>(&resp.body)
                    .map_err(|e| format!("unreadable answer: {e}"))
                    .and_then(|p| {
                        let next = match &p.next_link {
                            None => None,
                            Some(link) => Some(self.below_graph(link)?),
                        };
                        Ok((p.value, next))
                    });
                let (users, next) = match parsed {
                    Ok(x) => x,
                    Err(why) => {
                        let secs = self.directory_later(page, now);
                        self.log(
                            Level::Warn,
                            format!(
                                "user directory page {}: {why}; asked again in {secs} s",
                                self.dir.pages + 1
                            ),
                        );
                        return;
                    }
                };
                self.dir.refused = None;
                self.forbidden.remove(&OpClass::Directory);
                self.dir.pages += 1;
                self.dir.users += users.len();
                let entries: Vec<DirectoryEntry> = users.into_iter().map(entry).collect();
                let complete = next.is_none();
                self.out.push(Action::Directory(entries, complete));
                match next {
                    Some(path) => {
                        self.dir.want = Some(Page::Next(path));
                        self.dir.not_before = 0;
                    }
                    None => {
                        let (pages, users) = (self.dir.pages, self.dir.users);
                        self.log(
                            Level::Info,
                            format!("user directory read: {users} users in {pages} page(s); read again in 12 h"),
                        );
                        self.dir.pages = 0;
                        self.dir.users = 0;
                        self.dir.last_count = Some(users);
                        self.dir.want = Some(Page::First);
                        self.dir.not_before = now + DIRECTORY_EVERY_MS;
                        self.set_timer(TimerKey::Directory, DIRECTORY_EVERY_MS);
                    }
                }
            }
            Outcome::Forbidden(m) => {
                // `forbid` logs the refusal once, naming the permission.
                self.forbid(OpClass::Directory, what, &m);
                let secs = self.directory_later(page, now);
                self.log(
                    Level::Info,
                    format!("user directory refused; asked again in {secs} s"),
                );
            }
            Outcome::NotFound(m) => {
                let secs = self.directory_later(page, now);
                self.log(
                    Level::Warn,
                    format!("Graph refused to {what} (HTTP 404: {m}); asked again in {secs} s"),
                );
            }
            Outcome::Rejected(status, m) => {
                let secs = self.directory_later(page, now);
                self.log(
                    Level::Warn,
                    format!(
                        "Graph refused to {what} (HTTP {status}: {m}); asked again in {secs} s"
                    ),
                );
            }
            // Taken care of by the caller.
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => {}
        }
    }

    /// The path below the Graph base of an `@odata.nextLink`; a link
    /// elsewhere is not followed (the bearer token would go with it).
    fn below_graph(&self, link: &str) -> Result<String, String> {
        match link.strip_prefix(self.s.graph_base.as_str()) {
            Some(rest) if rest.starts_with('/') => Ok(rest.to_string()),
            _ => Err(format!(
                "the next page link {link:?} is not below {}; not followed",
                self.s.graph_base
            )),
        }
    }
}
