//! What operators ask of the presence service, each with the channel its
//! answer comes back on.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::engine::InstanceBoard;
use crate::engine::merge::Rules;
use crate::engine::users::User;

use super::{Note, PresenceError, Subscription, UserPresence, UserPresenceDetail};

type Reply<T> = oneshot::Sender<T>;

pub(super) enum Command {
    /// Users stored already: take them in (create or replace).
    PutUsers(Vec<User>, Reply<()>),
    /// A user deleted from the store.
    DeleteUser(String, Reply<()>),
    SetRules(Rules, Reply<()>),
    /// A note stored already (it carries its id).
    AddNote(String, Note, Reply<()>),
    DeleteNote(String, i64, Reply<()>),
    ForceSubscribe(String, Reply<Result<u64, PresenceError>>),
    Snapshot(
        Option<BTreeSet<String>>,
        Reply<(u64, Vec<Arc<UserPresence>>)>,
    ),
    Detail(String, Reply<Option<UserPresenceDetail>>),
    Subscribe {
        names: Option<BTreeSet<String>>,
        since: Option<u64>,
        reply: Reply<Subscription>,
    },
    Users(Reply<Vec<Arc<User>>>),
    User(String, Reply<Option<User>>),
    HasNote(String, i64, Reply<bool>),
    Observations(String, Reply<InstanceBoard>),
    /// An instance's directory as last reported (none: never heard of).
    Directory(String, Reply<Option<super::InstanceDirectory>>),
    /// Run the periodic tick now with this clock (tests).
    #[cfg(test)]
    Tick(u64, Reply<()>),
    /// How many user-against-instance matchings the service has done.
    #[cfg(test)]
    Derivations(Reply<u64>),
}
