//! `Hostinfo`, `NetInfo`, `Service`, `Location` and `TPMInfo`: what a client reports about
//! itself in RegisterRequest/MapRequest and what the server passes on to peers in `Node`.
//!
//! Clients are newer than servers, so both `Hostinfo` and `NetInfo` keep every field they do
//! not model in `extra` and write it back unchanged: peers must see what the client sent.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::godecode::{self, GoFields};
use super::gofloat;
use super::omit::{is_zero, null_default};
use super::opt_bool::OptBool;

/// Unmodelled JSON fields kept for a lossless round trip.
pub type ExtraFields = serde_json::Map<String, serde_json::Value>;

/// Go's `tailcfg.Hostinfo`: a summary of a Tailscale host. Every field is `omitempty` or
/// `omitzero` in Go, so defaults are omitted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
// `remote = "Self"` turns the derives into inherent functions, wrapped by the trait impls
// below so that Go-style key matching sees the field list (see `godecode`).
#[serde(default, remote = "Self")]
pub struct Hostinfo {
    /// `IPNVersion`: the client's version (long form).
    #[serde(rename = "IPNVersion", skip_serializing_if = "String::is_empty")]
    pub ipn_version: String,
    /// `FrontendLogID`: logtail id of the frontend.
    #[serde(rename = "FrontendLogID", skip_serializing_if = "String::is_empty")]
    pub frontend_log_id: String,
    /// `BackendLogID`: logtail id of the backend.
    #[serde(rename = "BackendLogID", skip_serializing_if = "String::is_empty")]
    pub backend_log_id: String,
    /// `OS`: operating system (`linux`, `windows`, `macOS`, `iOS`, `android`, ...).
    #[serde(rename = "OS", skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// `OSVersion`: the OS (on Linux: kernel) version.
    #[serde(rename = "OSVersion", skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// `Container`: whether the client runs in a container.
    #[serde(rename = "Container", skip_serializing_if = "OptBool::is_empty")]
    pub container: OptBool,
    /// `Env`: the hosting environment type.
    #[serde(rename = "Env", skip_serializing_if = "String::is_empty")]
    pub env: String,
    /// `Distro`: Linux distribution (`debian`, ...).
    #[serde(rename = "Distro", skip_serializing_if = "String::is_empty")]
    pub distro: String,
    /// `DistroVersion`: distribution version (`12`, `24.04`, ...).
    #[serde(rename = "DistroVersion", skip_serializing_if = "String::is_empty")]
    pub distro_version: String,
    /// `DistroCodeName`: distribution code name (`bookworm`, ...).
    #[serde(rename = "DistroCodeName", skip_serializing_if = "String::is_empty")]
    pub distro_code_name: String,
    /// `App`: the tsnet application name, if any.
    #[serde(rename = "App", skip_serializing_if = "String::is_empty")]
    pub app: String,
    /// `Desktop`: whether a desktop was detected (Linux).
    #[serde(rename = "Desktop", skip_serializing_if = "OptBool::is_empty")]
    pub desktop: OptBool,
    /// `Package`: the packaging of the client (`choco`, `appstore`, ...).
    #[serde(rename = "Package", skip_serializing_if = "String::is_empty")]
    pub package: String,
    /// `DeviceModel`: mobile device model.
    #[serde(rename = "DeviceModel", skip_serializing_if = "String::is_empty")]
    pub device_model: String,
    /// `PushDeviceToken`: APNs/FCM push token.
    #[serde(rename = "PushDeviceToken", skip_serializing_if = "String::is_empty")]
    pub push_device_token: String,
    /// `Hostname`: the host's name; the server derives the node name from it.
    #[serde(rename = "Hostname", skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// `ShieldsUp`: the host blocks incoming connections.
    #[serde(rename = "ShieldsUp", skip_serializing_if = "is_zero")]
    pub shields_up: bool,
    /// `ShareeNode`: the node is in the netmap because it was shared.
    #[serde(rename = "ShareeNode", skip_serializing_if = "is_zero")]
    pub sharee_node: bool,
    /// `NoLogsNoSupport`: the user opted out of logging.
    #[serde(rename = "NoLogsNoSupport", skip_serializing_if = "is_zero")]
    pub no_logs_no_support: bool,
    /// `RemoteConfig`: the node accepts remote configuration.
    #[serde(rename = "RemoteConfig", skip_serializing_if = "is_zero")]
    pub remote_config: bool,
    /// `WireIngress`: the node wants Funnel wiring even if not enabled now.
    #[serde(rename = "WireIngress", skip_serializing_if = "is_zero")]
    pub wire_ingress: bool,
    /// `IngressEnabled`: some Funnel endpoint is enabled.
    #[serde(rename = "IngressEnabled", skip_serializing_if = "is_zero")]
    pub ingress_enabled: bool,
    /// `AllowsUpdate`: the node allows remote updates.
    #[serde(rename = "AllowsUpdate", skip_serializing_if = "is_zero")]
    pub allows_update: bool,
    /// `Machine`: machine type (`uname -m`).
    #[serde(rename = "Machine", skip_serializing_if = "String::is_empty")]
    pub machine: String,
    /// `GoArch`: GOARCH of the binary.
    #[serde(rename = "GoArch", skip_serializing_if = "String::is_empty")]
    pub go_arch: String,
    /// `GoArchVar`: GOARM/GOAMD64 variant.
    #[serde(rename = "GoArchVar", skip_serializing_if = "String::is_empty")]
    pub go_arch_var: String,
    /// `GoVersion`: Go toolchain version.
    #[serde(rename = "GoVersion", skip_serializing_if = "String::is_empty")]
    pub go_version: String,
    /// `RoutableIPs`: routes the client advertises (subnet routes, exit node `0.0.0.0/0`/`::/0`).
    #[serde(
        rename = "RoutableIPs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub routable_ips: Vec<IpNet>,
    /// `RequestTags`: ACL tags the node asks for (`tag:xyz`).
    #[serde(
        rename = "RequestTags",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub request_tags: Vec<String>,
    /// `WoLMACs`: Wake-on-LAN MAC addresses.
    #[serde(
        rename = "WoLMACs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub wol_macs: Vec<String>,
    /// `Services`: advertised services, including the peerapi ports.
    #[serde(
        rename = "Services",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub services: Vec<Service>,
    /// `NetInfo`: the host's network state; `None` when not reported.
    #[serde(rename = "NetInfo", skip_serializing_if = "Option::is_none")]
    pub net_info: Option<NetInfo>,
    /// `sshHostKeys`: SSH host keys, present when Tailscale SSH runs.
    #[serde(
        rename = "sshHostKeys",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub ssh_host_keys: Vec<String>,
    /// `Cloud`: cloud provider name.
    #[serde(rename = "Cloud", skip_serializing_if = "String::is_empty")]
    pub cloud: String,
    /// `Userspace`: runs in userspace (netstack) mode.
    #[serde(rename = "Userspace", skip_serializing_if = "OptBool::is_empty")]
    pub userspace: OptBool,
    /// `UserspaceRouter`: the subnet router runs in userspace.
    #[serde(rename = "UserspaceRouter", skip_serializing_if = "OptBool::is_empty")]
    pub userspace_router: OptBool,
    /// `AppConnector`: runs the app-connector service.
    #[serde(rename = "AppConnector", skip_serializing_if = "OptBool::is_empty")]
    pub app_connector: OptBool,
    /// `ServicesHash`: opaque hash of the latest tailnet services list.
    #[serde(rename = "ServicesHash", skip_serializing_if = "String::is_empty")]
    pub services_hash: String,
    /// `PeerRelay`: willing to relay traffic for peers.
    #[serde(rename = "PeerRelay", skip_serializing_if = "is_zero")]
    pub peer_relay: bool,
    /// `ExitNodeID`: the StableID of the selected exit node, `""` when none.
    #[serde(rename = "ExitNodeID", skip_serializing_if = "String::is_empty")]
    pub exit_node_id: String,
    /// `Location`: declared geographic location.
    #[serde(rename = "Location", skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// `TPM`: TPM device metadata.
    #[serde(rename = "TPM", skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TPMInfo>,
    /// `StateEncrypted`: node state is stored encrypted.
    #[serde(rename = "StateEncrypted", skip_serializing_if = "OptBool::is_empty")]
    pub state_encrypted: OptBool,
    /// Fields this server does not model, passed through unchanged.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

/// Go's `tailcfg.Service`: a service running on a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    /// `Proto`: `tcp`, `udp`, `peerapi4`, `peerapi6` or `peerapi-dns-proxy`. Always written.
    #[serde(rename = "Proto")]
    pub proto: String,
    /// `Port`: the port number. Always written.
    #[serde(rename = "Port")]
    pub port: u16,
    /// `Description`: usually the process name.
    #[serde(rename = "Description", skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Go's `tailcfg.Location`: an optional declared location. All fields `omitempty`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Location {
    /// `Country`: country name.
    #[serde(rename = "Country", skip_serializing_if = "String::is_empty")]
    pub country: String,
    /// `CountryCode`: ISO 3166-1 alpha-2 code.
    #[serde(rename = "CountryCode", skip_serializing_if = "String::is_empty")]
    pub country_code: String,
    /// `City`: city name.
    #[serde(rename = "City", skip_serializing_if = "String::is_empty")]
    pub city: String,
    /// `CityCode`: short city code.
    #[serde(rename = "CityCode", skip_serializing_if = "String::is_empty")]
    pub city_code: String,
    /// `Latitude` in degrees.
    #[serde(
        rename = "Latitude",
        serialize_with = "gofloat::serialize",
        skip_serializing_if = "is_zero"
    )]
    pub latitude: f64,
    /// `Longitude` in degrees.
    #[serde(
        rename = "Longitude",
        serialize_with = "gofloat::serialize",
        skip_serializing_if = "is_zero"
    )]
    pub longitude: f64,
    /// `Priority` among exit nodes of the same location; 0 = none.
    #[serde(rename = "Priority", skip_serializing_if = "is_zero")]
    pub priority: i64,
}

/// Go's `tailcfg.TPMInfo`: TPM 2.0 device metadata. All fields `omitzero`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TPMInfo {
    /// `Manufacturer`: 4-letter vendor code.
    #[serde(rename = "Manufacturer", skip_serializing_if = "String::is_empty")]
    pub manufacturer: String,
    /// `Vendor`: vendor id string.
    #[serde(rename = "Vendor", skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    /// `Model`: vendor-defined model.
    #[serde(rename = "Model", skip_serializing_if = "is_zero")]
    pub model: i64,
    /// `FirmwareVersion`.
    #[serde(rename = "FirmwareVersion", skip_serializing_if = "is_zero")]
    pub firmware_version: u64,
    /// `SpecRevision`: TPM spec revision number.
    #[serde(rename = "SpecRevision", skip_serializing_if = "is_zero")]
    pub spec_revision: i64,
    /// `FamilyIndicator`: spec family, like `2.0`.
    #[serde(rename = "FamilyIndicator", skip_serializing_if = "String::is_empty")]
    pub family_indicator: String,
}

/// Go's `tailcfg.NetInfo`: the host's network state. Every field is `omitzero`/`omitempty`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
// `remote = "Self"` turns the derives into inherent functions, wrapped by the trait impls
// below so that Go-style key matching sees the field list (see `godecode`).
#[serde(default, remote = "Self")]
pub struct NetInfo {
    /// `MappingVariesByDestIP`: NAT mapping depends on destination (hard NAT).
    #[serde(
        rename = "MappingVariesByDestIP",
        skip_serializing_if = "OptBool::is_empty"
    )]
    pub mapping_varies_by_dest_ip: OptBool,
    /// `WorkingIPv6`: IPv6 internet connectivity.
    #[serde(rename = "WorkingIPv6", skip_serializing_if = "OptBool::is_empty")]
    pub working_ipv6: OptBool,
    /// `OSHasIPv6`: the OS supports IPv6.
    #[serde(rename = "OSHasIPv6", skip_serializing_if = "OptBool::is_empty")]
    pub os_has_ipv6: OptBool,
    /// `WorkingUDP`: UDP internet connectivity.
    #[serde(rename = "WorkingUDP", skip_serializing_if = "OptBool::is_empty")]
    pub working_udp: OptBool,
    /// `WorkingICMPv4`: ICMPv4 works.
    #[serde(rename = "WorkingICMPv4", skip_serializing_if = "OptBool::is_empty")]
    pub working_icmpv4: OptBool,
    /// `HavePortMap`: a port mapping is open.
    #[serde(rename = "HavePortMap", skip_serializing_if = "is_zero")]
    pub have_port_map: bool,
    /// `UPnP` present on the LAN.
    #[serde(rename = "UPnP", skip_serializing_if = "OptBool::is_empty")]
    pub upnp: OptBool,
    /// `PMP` (NAT-PMP) present on the LAN.
    #[serde(rename = "PMP", skip_serializing_if = "OptBool::is_empty")]
    pub pmp: OptBool,
    /// `PCP` present on the LAN.
    #[serde(rename = "PCP", skip_serializing_if = "OptBool::is_empty")]
    pub pcp: OptBool,
    /// `PreferredDERP`: home DERP region id; 0 = unknown. The server copies it to
    /// `Node.HomeDERP`.
    #[serde(rename = "PreferredDERP", skip_serializing_if = "is_zero")]
    pub preferred_derp: i64,
    /// `LinkType`: `wired`, `wifi` or `mobile`.
    #[serde(rename = "LinkType", skip_serializing_if = "String::is_empty")]
    pub link_type: String,
    /// `DERPLatency`: `"<region>-v4"`/`"<region>-v6"` → seconds.
    #[serde(
        rename = "DERPLatency",
        serialize_with = "gofloat::serialize_map",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub derp_latency: BTreeMap<String, f64>,
    /// `FirewallMode`: Linux firewall mode and reason (`nft-forced`, ...).
    #[serde(rename = "FirewallMode", skip_serializing_if = "String::is_empty")]
    pub firewall_mode: String,
    /// Fields this server does not model (e.g. the older `HairPinning`), passed through.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

/// Trait impls over the `remote = "Self"` derives of the two flattened types.
macro_rules! go_fields {
    ($ty:ident, $name:literal, [$($field:literal),* $(,)?]) => {
        impl GoFields for $ty {
            const NAME: &'static str = $name;
            const FIELDS: &'static [&'static str] = &[$($field),*];
            fn from_map<'de, A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
                $ty::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                godecode::deserialize_fields(d)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $ty::serialize(self, s)
            }
        }
    };
}

go_fields!(
    Hostinfo,
    "Hostinfo",
    [
        "IPNVersion",
        "FrontendLogID",
        "BackendLogID",
        "OS",
        "OSVersion",
        "Container",
        "Env",
        "Distro",
        "DistroVersion",
        "DistroCodeName",
        "App",
        "Desktop",
        "Package",
        "DeviceModel",
        "PushDeviceToken",
        "Hostname",
        "ShieldsUp",
        "ShareeNode",
        "NoLogsNoSupport",
        "RemoteConfig",
        "WireIngress",
        "IngressEnabled",
        "AllowsUpdate",
        "Machine",
        "GoArch",
        "GoArchVar",
        "GoVersion",
        "RoutableIPs",
        "RequestTags",
        "WoLMACs",
        "Services",
        "NetInfo",
        "sshHostKeys",
        "Cloud",
        "Userspace",
        "UserspaceRouter",
        "AppConnector",
        "ServicesHash",
        "PeerRelay",
        "ExitNodeID",
        "Location",
        "TPM",
        "StateEncrypted",
    ]
);

go_fields!(
    NetInfo,
    "NetInfo",
    [
        "MappingVariesByDestIP",
        "WorkingIPv6",
        "OSHasIPv6",
        "WorkingUDP",
        "WorkingICMPv4",
        "HavePortMap",
        "UPnP",
        "PMP",
        "PCP",
        "PreferredDERP",
        "LinkType",
        "DERPLatency",
        "FirewallMode",
    ]
);

#[cfg(test)]
mod fields_tests {
    use super::*;

    /// The `rename`s between `pub struct <name> {` and its closing brace in this file.
    fn renames(name: &str) -> Vec<String> {
        let src = include_str!("hostinfo.rs");
        let start = src.find(&format!("pub struct {name} {{")).unwrap();
        let body = &src[start..start + src[start..].find("\n}\n").unwrap()];
        body.split("rename = \"")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].to_owned())
            .collect()
    }

    #[test]
    fn field_lists_match_the_declarations() {
        assert_eq!(Hostinfo::FIELDS, renames("Hostinfo"));
        assert_eq!(NetInfo::FIELDS, renames("NetInfo"));
    }
}
