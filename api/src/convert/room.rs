//! Rooms as the protos write them: pings in, addresses and listings out.

use maestro_engine::Ping;
use maestro_engine::room::{Address, AddressPort, PingStatus, Room};

use super::json_text;
use super::time::timestamp;
use crate::error::ApiError;
use crate::proto::api::v1;

/// The engine's ping. A status that is not a ping status, or a negative
/// match count, is refused naming the field.
pub(crate) fn ping(request: v1::UpdateRoomWithPingRequest) -> Result<Ping, ApiError> {
    let status = PingStatus::parse(&request.status).ok_or_else(|| {
        ApiError::invalid_argument(format!(
            "status: {:?} is not a ping status; must be one of ready, occupied, terminating, terminated",
            request.status
        ))
    })?;
    let running_matches = u64::try_from(request.running_matches)
        .map_err(|_| ApiError::invalid_argument("runningMatches: must not be negative"))?;
    Ok(Ping {
        scheduler: request.scheduler_name,
        room: request.room_name,
        status,
        running_matches,
        metadata_json: json_text(request.metadata.as_ref()),
    })
}

pub(crate) fn ports(ports: &[AddressPort]) -> Vec<v1::Port> {
    ports
        .iter()
        .map(|p| v1::Port {
            name: p.name.clone(),
            protocol: p.protocol.clone(),
            port: i32::from(p.port),
        })
        .collect()
}

impl From<&Address> for v1::GetRoomAddressResponse {
    fn from(address: &Address) -> Self {
        v1::GetRoomAddressResponse {
            ports: ports(&address.ports),
            host: address.host.clone(),
            ipv6_label: String::new(),
        }
    }
}

impl From<&Room> for v1::RoomItem {
    fn from(room: &Room) -> Self {
        v1::RoomItem {
            id: room.id.clone(),
            status: room.status.as_str().to_string(),
            version: room.version.to_string(),
            running_matches: u32::try_from(room.running_matches).unwrap_or(u32::MAX),
            last_ping_at: Some(timestamp(room.last_ping_at)),
            address: room.address.as_ref().map(|a| v1::RoomAddress {
                host: a.host.clone(),
                ports: ports(&a.ports),
            }),
        }
    }
}
