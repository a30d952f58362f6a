//! `{{name}}`: a presence connector for the presence hub.
//!
//! It polls `{server}/lines/{extension}` for every extension the hub asks it
//! to watch and reports the answer (`available`, `away`, `busy`,
//! `do-not-disturb` or `offline`, as plain text) as the user's rich
//! presence. Replace the protocol with your own; keep the shape: settings
//! from one struct, effects through `Cx`, tests with the SDK's test kit.
//!
//! Build: `cargo build --release --target wasm32-wasip2`; test: `cargo test`;
//! package: `cargo xtask package PATH` in the hub's repository.

use std::collections::BTreeSet;

use presence_connector_sdk::{
    self as sdk, Availability, Capabilities, Channels, Config, Connector, ConnectorConfig,
    ConnectorError, ConnectorStatus, Cx, EndpointId, EndpointKind, HttpError, PluginInfo,
    Presence, Request, ResponseExt, Secret, http,
};

/// The configuration the operator fills in: `describe()` announces these
/// fields and `new` reads them, both from this one declaration.
#[derive(ConnectorConfig, Debug)]
pub struct Settings {
    /// Base URL of the system to poll, e.g. https://pbx.example.com; the
    /// connector asks {server}/lines/{extension}.
    #[config(label = "Server", url)]
    pub server: String,
    /// Sent as `Authorization: Bearer …` when set.
    #[config(label = "API token")]
    pub token: Option<Secret>,
    /// How often each watched line is asked (seconds).
    #[config(
        label = "Poll every (seconds)",
        default = 30,
        range(min = 1, max = 3600)
    )]
    pub poll_seconds: u32,
}

/// The connector: its settings and the lines it watches.
pub struct {{Type}} {
    settings: Settings,
    watched: BTreeSet<EndpointId>,
}

/// This connector's timers.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Timer {
    Poll,
}

/// This connector's HTTP requests: one per watched line and poll.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Req {
    Line(EndpointId),
}

/// A request that takes longer is abandoned (ms).
const REQUEST_TIMEOUT_MS: u32 = 5_000;

impl {{Type}} {
    fn poll_ms(&self) -> u64 {
        u64::from(self.settings.poll_seconds) * 1000
    }

    fn ask(&self, cx: &mut Cx<Self>, extension: &EndpointId) {
        let url = format!(
            "{}/lines/{extension}",
            self.settings.server.trim_end_matches('/')
        );
        let mut request = Request::get(url).timeout_ms(REQUEST_TIMEOUT_MS);
        if let Some(token) = &self.settings.token {
            request = request.header("Authorization", format!("Bearer {}", token.expose()));
        }
        cx.http(Req::Line(extension.clone()), request);
    }
}

/// The text a line answers, as an availability.
fn availability(answer: &str) -> Option<Availability> {
    Some(match answer.trim() {
        "available" => Availability::Available,
        "away" => Availability::Away,
        "busy" => Availability::Busy,
        "do-not-disturb" => Availability::DoNotDisturb,
        "offline" => Availability::Offline,
        _ => return None,
    })
}

impl Connector for {{Type}} {
    type TimerKey = Timer;
    type RequestKey = Req;
    type SocketKey = ();

    fn describe() -> PluginInfo {
        PluginInfo {
            // From Cargo.toml, as the packaged plugin.toml is: one source.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
            config_fields: Settings::config_fields(),
            // The hub asks it to watch the `extension` of every user.
            endpoint_kinds: vec![EndpointKind {
                attribute: "extension".into(),
                label: "Extension".into(),
                feeds: Channels::RICH,
            }],
            // Reads only.
            capabilities: Capabilities::default(),
        }
    }

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let settings = Settings::from_config(config)?;
        cx.info(format!(
            "polling {} every {} s",
            settings.server, settings.poll_seconds
        ));
        let connector = Self {
            settings,
            watched: BTreeSet::new(),
        };
        // Lines are asked when watched; the timer repeats the question.
        cx.set_timer(Timer::Poll, connector.poll_ms());
        cx.status(ConnectorStatus::UpAndRunning, None);
        Ok(connector)
    }

    /// New lines are asked at once, not at the next poll.
    fn watch(&mut self, cx: &mut Cx<Self>, endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        for extension in endpoints {
            if self.watched.insert(extension.clone()) {
                self.ask(cx, &extension);
            }
        }
        Ok(())
    }

    fn unwatch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        for extension in endpoints {
            self.watched.remove(&extension);
            cx.cancel_http(Req::Line(extension));
        }
        Ok(())
    }

    fn on_timer(&mut self, cx: &mut Cx<Self>, _poll: Timer) {
        for extension in &self.watched {
            self.ask(cx, extension);
        }
        cx.set_timer(Timer::Poll, self.poll_ms());
    }

    fn on_http(&mut self, cx: &mut Cx<Self>, key: Req, outcome: Result<http::Response, HttpError>) {
        let Req::Line(extension) = key;
        match outcome {
            Ok(answer) if answer.is_success() => match availability(&answer.text()) {
                // Valid for two polls and a request: a line that stops
                // answering does not keep its last state for ever.
                Some(state) => cx.presence(
                    Presence::new(extension)
                        .available(state)
                        .valid_for_ms(2 * self.poll_ms() + u64::from(REQUEST_TIMEOUT_MS)),
                ),
                None => cx.warn(format!("{extension}: unknown line state")),
            },
            Ok(answer) => cx.warn(format!("{extension}: HTTP {}", answer.status)),
            // A missing grant comes back here as HttpError::Refused.
            Err(error) => cx.warn(format!("{extension}: {error}")),
        }
    }
}

sdk::register_connector!({{Type}});

#[cfg(test)]
mod tests {
    use presence_connector_sdk::testkit::{TestHub, response, text};
    use presence_connector_sdk::{
        Availability, ConfigValue, ConnectorConfig, ConnectorError, FieldKind, HostError,
    };

    use super::{Settings, {{Type}}};

    const SERVER: &str = "https://pbx.example.com";

    #[test]
    fn reports_the_state_of_each_watched_line_at_once_and_on_every_poll() {
        let mut hub = TestHub::<{{Type}}>::new();
        hub.script_http_times("GET", "/lines/201", response(200, "busy\n"), 2);
        hub.configure(&[
            ("server", text(SERVER)),
            ("token", text("t0ken")),
            ("poll_seconds", ConfigValue::Integer(10)),
        ])
        .unwrap();
        hub.watch(&["201"]).unwrap();
        let update = hub.presence().pop().expect("asked at once");
        assert_eq!(update.endpoint, "201");
        assert_eq!(update.rich.unwrap().availability, Availability::Busy);
        let request = &hub.requests()[0];
        assert_eq!(request.request.url, format!("{SERVER}/lines/201"));
        assert_eq!(request.header("authorization"), Some("Bearer t0ken"));

        hub.advance(10_000);
        assert_eq!(hub.requests().len(), 2, "polled again after 10 s");
    }

    #[test]
    fn an_unknown_answer_or_a_missing_grant_is_logged_not_reported() {
        let mut hub = TestHub::<{{Type}}>::new();
        hub.script_http("GET", "/lines/201", response(200, "lunch"));
        hub.refuse(
            "https://pbx.example.com/lines/202",
            HostError::NotGranted("https://pbx.example.com:443".into()),
        );
        hub.configure(&[("server", text(SERVER))]).unwrap();
        hub.watch(&["201", "202"]).unwrap();
        assert!(hub.presence().is_empty());
        let logs = hub.logs();
        assert!(logs.iter().any(|(_, l)| l.contains("201: unknown line state")), "{logs:?}");
        assert!(logs.iter().any(|(_, l)| l.contains("not-granted")), "{logs:?}");
    }

    #[test]
    fn a_bad_configuration_names_the_field() {
        let mut hub = TestHub::<{{Type}}>::new();
        let error = hub
            .configure(&[
                ("server", text(SERVER)),
                ("poll_seconds", ConfigValue::Integer(0)),
            ])
            .unwrap_err();
        assert_eq!(
            error,
            presence_connector_sdk::invalid_config(
                "poll_seconds",
                "must be a whole number from 1 to 3600"
            )
        );
        let error = hub.configure(&[("server", text("pbx"))]).unwrap_err();
        assert!(matches!(error, ConnectorError::InvalidConfig(e) if e.field == "server"));
    }

    #[test]
    fn declares_its_fields() {
        let fields = Settings::config_fields();
        assert_eq!(fields[0].kind, FieldKind::Url);
        assert!(fields[0].required);
        assert!(fields[1].secret && !fields[1].required);
        assert_eq!(fields[2].default_value.as_deref(), Some("30"));
    }
}
