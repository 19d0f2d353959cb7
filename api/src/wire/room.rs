//! Rooms messages (`rooms.proto`): pings, events, addresses, allocation;
//! and maestro's own room listing.

use maestro_engine::Ping;
use maestro_engine::room::{Address, AddressPort, PingStatus, Room};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::codec;
use super::time::timestamp;

/// Body of `PUT /scheduler/{s}/rooms/{room}/ping`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PingRequest {
    /// A `google.protobuf.Struct`, kept as the room's metadata.
    pub metadata: Option<Map<String, Value>>,
    /// `ready`, `occupied`, `terminating` or `terminated`.
    pub status: String,
    /// The room's clock; ignored (the server's time is recorded), as upstream.
    #[serde(deserialize_with = "codec::int::option")]
    pub timestamp: Option<i64>,
    #[serde(alias = "running_matches", deserialize_with = "codec::int::option")]
    pub running_matches: Option<i64>,
}

/// Why a ping request cannot become an engine ping.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PingRequestError {
    #[error(
        "status: {0:?} is not a ping status; must be one of ready, occupied, terminating, terminated"
    )]
    Status(String),
    #[error("runningMatches: must not be negative")]
    NegativeMatches,
}

impl PingRequest {
    pub fn into_ping(self, scheduler: String, room: String) -> Result<Ping, PingRequestError> {
        let status =
            PingStatus::parse(&self.status).ok_or(PingRequestError::Status(self.status))?;
        let running_matches = u64::try_from(self.running_matches.unwrap_or(0))
            .map_err(|_| PingRequestError::NegativeMatches)?;
        Ok(Ping {
            scheduler,
            room,
            status,
            running_matches,
            metadata_json: Value::Object(self.metadata.unwrap_or_default()).to_string(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PingResponse {
    pub success: bool,
}

/// Body of the room event, player event and (deprecated) status routes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EventRequest {
    pub metadata: Option<Map<String, Value>>,
    pub event: String,
    /// Only the status route has it.
    pub status: String,
    #[serde(deserialize_with = "codec::int::option")]
    pub timestamp: Option<i64>,
    #[serde(alias = "running_matches", deserialize_with = "codec::int::option")]
    pub running_matches: Option<i64>,
}

/// Answer of the room event and player event routes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventResponse {
    pub success: bool,
    pub message: String,
}

/// Answer of the deprecated status route.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusResponse {
    pub success: bool,
}

/// A room's port as the rooms API reports it. `port` is an int32 in
/// upstream's messages (as everywhere in Kubernetes), so protojson writes
/// it as a JSON number.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Port {
    pub name: String,
    pub protocol: String,
    pub port: i32,
}

/// Answer of `GET /scheduler/{s}/rooms/{room}/address`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomAddressResponse {
    pub ports: Vec<Port>,
    pub host: String,
    /// Always empty, as upstream.
    pub ipv6_label: String,
}

impl From<&Address> for RoomAddressResponse {
    fn from(address: &Address) -> Self {
        RoomAddressResponse {
            ports: ports(&address.ports),
            host: address.host.clone(),
            ipv6_label: String::new(),
        }
    }
}

fn ports(ports: &[AddressPort]) -> Vec<Port> {
    ports
        .iter()
        .map(|p| Port {
            name: p.name.clone(),
            protocol: p.protocol.clone(),
            port: i32::from(p.port),
        })
        .collect()
}

/// Body of `POST /scheduler/{s}/rooms/allocate`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AllocateRequest {
    /// Retries with the same key within the allocation TTL get the same
    /// room. The `Idempotency-Key` header, when present, wins.
    #[serde(alias = "idempotency_key")]
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocateResponse {
    pub room_id: String,
    pub success: bool,
    pub message: String,
    pub ports: Vec<Port>,
    pub host: String,
}

impl AllocateResponse {
    pub fn allocated(room: String, address: Option<&Address>) -> Self {
        match address {
            Some(address) => AllocateResponse {
                room_id: room,
                success: true,
                message: String::new(),
                ports: ports(&address.ports),
                host: address.host.clone(),
            },
            None => AllocateResponse {
                room_id: room,
                success: true,
                message: "the room has no address yet: its pod is not on a node".to_string(),
                ports: Vec::new(),
                host: String::new(),
            },
        }
    }

    pub fn failed(message: String) -> Self {
        AllocateResponse {
            room_id: String::new(),
            success: false,
            message,
            ports: Vec::new(),
            host: String::new(),
        }
    }
}

/// Where a listed room is reached.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoomAddress {
    pub host: String,
    pub ports: Vec<Port>,
}

/// An item of `GET /schedulers/{name}/rooms` (maestro only).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomItem {
    pub id: String,
    pub status: String,
    pub version: String,
    /// A uint32 in the proto: a larger count (pings carry an int64) is
    /// written as uint32's largest.
    pub running_matches: u32,
    pub last_ping_at: String,
    /// `null` until the room's pod is on a node.
    pub address: Option<RoomAddress>,
}

impl From<&Room> for RoomItem {
    fn from(room: &Room) -> Self {
        RoomItem {
            id: room.id.clone(),
            status: room.status.as_str().to_string(),
            version: room.version.to_string(),
            running_matches: u32::try_from(room.running_matches).unwrap_or(u32::MAX),
            last_ping_at: timestamp(room.last_ping_at),
            address: room.address.as_ref().map(|a| RoomAddress {
                host: a.host.clone(),
                ports: ports(&a.ports),
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRoomsResponse {
    pub page: u32,
    pub page_size: u32,
    pub total: u32,
    pub rooms: Vec<RoomItem>,
}
