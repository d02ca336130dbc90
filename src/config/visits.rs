//! `visits`: which tracker writes are answered at the edge with Ackee's answer for an ignored
//! visit ([`crate::visits`]).

use super::section::{Keyed, Problems, Section};
use super::values::each;
use crate::forwarded::Cidr;
use crate::visits::VisitSettings;

/// Reads `visits`; every key is optional, and bots are ignored unless `ignore_bots: false`.
pub(super) fn visits(problems: &mut Problems, root: &Section<'_>) -> VisitSettings {
    let mut out = VisitSettings::default();
    let example = "a mapping with ignore_bots, ignore_networks, honor_gpc and honor_dnt";
    let Some(visits) = root.section(problems, "visits", example) else {
        return out;
    };
    let ignore_bots = visits.flag(problems, "ignore_bots");
    let example = "[\"192.0.2.0/24\", \"2001:db8:1::/48\"]";
    let networks = visits.texts(problems, "ignore_networks", example);
    let honor_gpc = visits.flag(problems, "honor_gpc");
    let honor_dnt = visits.flag(problems, "honor_dnt");
    visits.finish(problems);
    let flags = [
        (ignore_bots, &mut out.ignore_bots),
        (honor_gpc, &mut out.honor_gpc),
        (honor_dnt, &mut out.honor_dnt),
    ];
    for (written, setting) in flags {
        if let Some(flag) = written {
            *setting = flag.value;
        }
    }
    for network in networks.iter().flat_map(|list| &list.value) {
        whole_family(problems, network);
    }
    out.ignore_networks = each(problems, networks, Cidr::parse);
    out
}

/// A whole address family ignored is almost certainly a mistake: a warning says what it means.
/// A network that does not parse is left to [`each`], which reports it.
fn whole_family(problems: &mut Problems, network: &Keyed<String>) {
    let Ok(parsed) = Cidr::parse(&network.value) else {
        return;
    };
    let parsed = parsed.to_string();
    if parsed.ends_with("/0") {
        let family = if parsed.contains(':') { "IPv6" } else { "IPv4" };
        let message = format!(
            "\"{parsed}\" is every {family} address, so no visit over {family} would be counted; write your own networks, such as \"192.0.2.0/24\""
        );
        problems.warning(&network.key, message);
    }
}
