//! Builds the forwarder protocol's messages from an event, as upstream
//! does (`internal/adapters/events/events_forwarder.go`), so a matchmaker
//! sees the same fields and metadata keys from maestro as from Maestro Next:
//!
//! - a ping resync (`SendRoomResync`) and a termination (`SendRoomStatus`)
//!   carry the room's last ping metadata plus `eventType`, `pingType` and
//!   `ports`, over the forwarder's metadata (the event's keys win), and
//!   `roomType` from the forwarder's metadata;
//! - a room event (`SendRoomEvent`) carries the request's metadata plus
//!   `eventType: roomEvent`, `roomEvent` and `ports`, under the
//!   forwarder's metadata (the forwarder's keys win);
//! - a player event (`SendPlayerEvent`) carries the request's metadata and
//!   the forwarder's `roomType`.
//!
//! Metadata values that are not strings are written as JSON text (`3`,
//! `true`, `{"a":1}`); upstream uses Go's `%v`, which agrees for numbers and
//! booleans.

use std::collections::HashMap;

use maestro_api::proto::eventforwarder::{
    PlayerEvent, Room, RoomEvent, RoomStatus, player_event::PlayerEventType,
    room_status::RoomStatusType,
};
use maestro_engine::room::{Address, PingStatus};
use maestro_engine::scheduler::Forwarder;
use maestro_engine::{ForwardEvent, ForwardKind, PlayerEventKind};
use serde_json::{Map, Value};

/// One call to a forwarder.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    RoomResync(RoomStatus),
    RoomStatus(RoomStatus),
    RoomEvent(RoomEvent),
    PlayerEvent(PlayerEvent),
}

impl Call {
    /// The gRPC method, for metrics and logs.
    pub fn method(&self) -> &'static str {
        match self {
            Call::RoomResync(_) => "SendRoomResync",
            Call::RoomStatus(_) => "SendRoomStatus",
            Call::RoomEvent(_) => "SendRoomEvent",
            Call::PlayerEvent(_) => "SendPlayerEvent",
        }
    }
}

/// The event kinds' metrics labels, by [`kind_index`].
pub const KIND_LABELS: [&str; 4] = ["resync", "status", "room_event", "player_event"];

/// The event's kind as an index into [`KIND_LABELS`].
pub fn kind_index(kind: &ForwardKind) -> usize {
    match kind {
        ForwardKind::Resync(_) => 0,
        ForwardKind::Terminated => 1,
        ForwardKind::RoomEvent { .. } => 2,
        ForwardKind::PlayerEvent { .. } => 3,
    }
}

pub fn build(event: &ForwardEvent, forwarder: &Forwarder) -> Call {
    let forwarder_metadata = forwarder
        .options
        .as_ref()
        .map(|o| object(&o.metadata_json))
        .unwrap_or_default();
    let mut attributes = object(&event.metadata_json);
    let (host, port) = host_and_port(event.address.as_ref());
    let room = |metadata: HashMap<String, String>, room_type: String| Room {
        game: event.game.clone(),
        room_id: event.room.clone(),
        host: host.clone(),
        port,
        metadata,
        room_type,
    };
    let room_type = match forwarder_metadata.get("roomType") {
        Some(Value::String(t)) => t.clone(),
        _ => String::new(),
    };
    match &event.kind {
        ForwardKind::Resync(_) | ForwardKind::Terminated => {
            let (event_type, ping) = match &event.kind {
                ForwardKind::Resync(status) => ("resync", *status),
                _ => ("status", PingStatus::Terminated),
            };
            attributes.insert("eventType".into(), event_type.into());
            attributes.insert("pingType".into(), ping_type(ping).into());
            add_ports(&mut attributes, event.address.as_ref());
            let message = RoomStatus {
                room: Some(room(merge(&forwarder_metadata, &attributes), room_type)),
                status_type: status_type(ping) as i32,
            };
            if ping == PingStatus::Terminated {
                // Upstream sends a status event, not a resync, for a room
                // that is gone.
                Call::RoomStatus(message)
            } else {
                Call::RoomResync(message)
            }
        }
        ForwardKind::RoomEvent { event: name } => {
            attributes.insert("eventType".into(), "roomEvent".into());
            attributes.insert("roomEvent".into(), name.clone().into());
            add_ports(&mut attributes, event.address.as_ref());
            Call::RoomEvent(RoomEvent {
                room: Some(room(merge(&attributes, &forwarder_metadata), String::new())),
                event_type: name.clone(),
                metadata: HashMap::new(),
            })
        }
        ForwardKind::PlayerEvent {
            player_id,
            event: kind,
        } => {
            if let Some(t) = forwarder_metadata.get("roomType") {
                attributes.insert("roomType".into(), t.clone());
            }
            Call::PlayerEvent(PlayerEvent {
                player_id: player_id.clone(),
                room: Some(Room {
                    game: event.game.clone(),
                    room_id: event.room.clone(),
                    ..Room::default()
                }),
                event_type: match kind {
                    PlayerEventKind::Join => PlayerEventType::PlayerJoined,
                    PlayerEventKind::Left => PlayerEventType::PlayerLeft,
                } as i32,
                metadata: strings(&attributes),
            })
        }
    }
}

/// A JSON object from stored text; anything else (which the API never
/// stores) is an empty object.
fn object(json: &str) -> Map<String, Value> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn strings(map: &Map<String, Value>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), text(v))).collect()
}

/// `base` overlaid with `over`: keys of `over` win.
fn merge(base: &Map<String, Value>, over: &Map<String, Value>) -> HashMap<String, String> {
    let mut out = strings(base);
    out.extend(strings(over));
    out
}

/// The host and the port a player connects to: the one named
/// `clientPort`, else the first (upstream's `selectPort`).
fn host_and_port(address: Option<&Address>) -> (String, i32) {
    let Some(address) = address else {
        return (String::new(), 0);
    };
    let port = address
        .ports
        .iter()
        .find(|p| p.name == "clientPort")
        .or_else(|| address.ports.first())
        .map_or(0, |p| i32::from(p.port));
    (address.host.clone(), port)
}

/// `ports`: the room's ports as a JSON array text.
fn add_ports(attributes: &mut Map<String, Value>, address: Option<&Address>) {
    let Some(address) = address.filter(|a| !a.ports.is_empty()) else {
        return;
    };
    let ports: Vec<Value> = address
        .ports
        .iter()
        .map(|p| serde_json::json!({"port": p.port, "name": p.name, "protocol": p.protocol}))
        .collect();
    attributes.insert("ports".into(), Value::Array(ports).to_string().into());
}

fn ping_type(status: PingStatus) -> &'static str {
    match status {
        PingStatus::Occupied => "occupied",
        PingStatus::Terminating => "terminating",
        PingStatus::Terminated => "terminated",
        PingStatus::Ready | PingStatus::Unknown => "ready",
    }
}

fn status_type(status: PingStatus) -> RoomStatusType {
    match status {
        PingStatus::Occupied => RoomStatusType::Occupied,
        PingStatus::Terminating => RoomStatusType::Terminating,
        PingStatus::Terminated => RoomStatusType::Terminated,
        PingStatus::Ready | PingStatus::Unknown => RoomStatusType::Ready,
    }
}

#[cfg(test)]
mod tests {
    use maestro_engine::room::AddressPort;
    use maestro_engine::scheduler::ForwarderOptions;

    use super::*;

    fn forwarder(metadata: &str) -> Forwarder {
        Forwarder {
            name: "mm".into(),
            enabled: true,
            forward_type: "gRPC".into(),
            address: "127.0.0.1:1".into(),
            options: Some(ForwarderOptions {
                timeout_ms: 1000,
                metadata_json: metadata.into(),
            }),
        }
    }

    fn event(kind: ForwardKind, metadata: &str) -> ForwardEvent {
        ForwardEvent {
            scheduler: "arena".into(),
            game: "tennis".into(),
            room: "arena-1".into(),
            kind,
            metadata_json: metadata.into(),
            address: Some(Address {
                host: "10.0.0.7".into(),
                ports: vec![
                    AddressPort {
                        name: "admin".into(),
                        port: 9000,
                        protocol: "TCP".into(),
                    },
                    AddressPort {
                        name: "clientPort".into(),
                        port: 20001,
                        protocol: "UDP".into(),
                    },
                ],
            }),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const PORTS: &str = r#"[{"name":"admin","port":9000,"protocol":"TCP"},{"name":"clientPort","port":20001,"protocol":"UDP"}]"#;

    #[test]
    fn a_resync_carries_the_ping_metadata_over_the_forwarders() {
        let call = build(
            &event(
                ForwardKind::Resync(PingStatus::Occupied),
                r#"{"region":"eu","players":3,"roomType":"from-ping"}"#,
            ),
            &forwarder(r#"{"roomType":"ranked","region":"us","extra":true}"#),
        );
        let Call::RoomResync(status) = call else {
            panic!("not a resync: {call:?}");
        };
        assert_eq!(status.status_type, RoomStatusType::Occupied as i32);
        let room = status.room.unwrap();
        assert_eq!(
            (room.game.as_str(), room.room_id.as_str()),
            ("tennis", "arena-1")
        );
        assert_eq!((room.host.as_str(), room.port), ("10.0.0.7", 20001));
        assert_eq!(room.room_type, "ranked");
        assert_eq!(
            room.metadata,
            map(&[
                ("region", "eu"),
                ("players", "3"),
                ("roomType", "from-ping"),
                ("extra", "true"),
                ("eventType", "resync"),
                ("pingType", "occupied"),
                ("ports", PORTS),
            ])
        );
    }

    #[test]
    fn a_terminated_room_is_a_status_event() {
        for kind in [
            ForwardKind::Terminated,
            ForwardKind::Resync(PingStatus::Terminated),
        ] {
            let call = build(&event(kind, "{}"), &forwarder("{}"));
            let Call::RoomStatus(status) = &call else {
                panic!("not a status: {call:?}");
            };
            assert_eq!(status.status_type, RoomStatusType::Terminated as i32);
            assert_eq!(call.method(), "SendRoomStatus");
            let metadata = &status.room.as_ref().unwrap().metadata;
            assert_eq!(metadata["pingType"], "terminated");
        }
    }

    #[test]
    fn a_room_event_puts_the_forwarders_metadata_over_the_events() {
        let call = build(
            &event(
                ForwardKind::RoomEvent {
                    event: "matchStarted".into(),
                },
                r#"{"region":"eu","map":"dust"}"#,
            ),
            &forwarder(r#"{"region":"us"}"#),
        );
        let Call::RoomEvent(room_event) = call else {
            panic!("not a room event: {call:?}");
        };
        assert_eq!(room_event.event_type, "matchStarted");
        assert!(room_event.metadata.is_empty());
        let room = room_event.room.unwrap();
        assert_eq!(room.port, 20001);
        assert_eq!(
            room.metadata,
            map(&[
                ("region", "us"),
                ("map", "dust"),
                ("eventType", "roomEvent"),
                ("roomEvent", "matchStarted"),
                ("ports", PORTS),
            ])
        );
    }

    #[test]
    fn a_player_event_names_the_player_and_the_room_type() {
        let call = build(
            &event(
                ForwardKind::PlayerEvent {
                    player_id: "p1".into(),
                    event: PlayerEventKind::Left,
                },
                r#"{"playerId":"p1","team":2}"#,
            ),
            &forwarder(r#"{"roomType":"ranked","region":"us"}"#),
        );
        let Call::PlayerEvent(player) = call else {
            panic!("not a player event: {call:?}");
        };
        assert_eq!(player.player_id, "p1");
        assert_eq!(player.event_type, PlayerEventType::PlayerLeft as i32);
        let room = player.room.unwrap();
        assert_eq!((room.room_id.as_str(), room.host.as_str()), ("arena-1", ""));
        assert_eq!(
            player.metadata,
            map(&[("playerId", "p1"), ("team", "2"), ("roomType", "ranked")])
        );
    }

    #[test]
    fn a_room_without_an_address_has_no_host_and_port_zero() {
        let mut e = event(ForwardKind::Resync(PingStatus::Ready), "not json");
        e.address = None;
        let Call::RoomResync(status) = build(&e, &forwarder("{}")) else {
            panic!("not a resync");
        };
        let room = status.room.unwrap();
        assert_eq!((room.host.as_str(), room.port), ("", 0));
        assert!(!room.metadata.contains_key("ports"));
        assert_eq!(room.metadata["eventType"], "resync");
    }
}
