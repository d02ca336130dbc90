//! `explain --user-agent UA --client IP [--gpc] [--dnt]`: whether the gateway with a config
//! would count a visit, or answer its tracker writes at the edge as Ackee does for an ignored
//! visit, and which rule of `visits` decides, with the same [`crate::visits`] as the proxy.

use std::net::IpAddr;

use crate::visits::{FIXED_ID, Reason, VisitSettings, Visitor, Visits};

/// What the visitor looks like to the gateway, from the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VisitAsk {
    /// `--user-agent`; empty when not given.
    pub user_agent: String,
    /// `--client`: the visitor's address as the gateway resolves it.
    pub client: Option<IpAddr>,
    /// `--gpc`: the browser sends `Sec-GPC: 1`.
    pub gpc: bool,
    /// `--dnt`: the browser sends `DNT: 1`.
    pub dnt: bool,
}

/// The rules as configured, in the order they are tried.
fn rules(s: &VisitSettings) -> String {
    let networks = match s.ignore_networks.len() {
        0 => "no network ignored".to_owned(),
        1 => format!("1 network ignored ({})", s.ignore_networks[0]),
        n => format!("{n} networks ignored"),
    };
    let on = |b: bool| if b { "honoured" } else { "not honoured" };
    let bots = if s.ignore_bots {
        "bots ignored"
    } else {
        "bots counted (ignore_bots: false)"
    };
    format!(
        "{networks}; Sec-GPC {}; DNT {}; {bots}",
        on(s.honor_gpc),
        on(s.honor_dnt)
    )
}

/// The verdict on a visit, as lines to print after the CORS report.
pub fn verdict(settings: &VisitSettings, ask: &VisitAsk, conf: &str) -> Result<String, String> {
    let visits = Visits::new(settings)?;
    let visitor = Visitor {
        user_agent: ask.user_agent.as_bytes(),
        client: ask.client,
        gpc: ask.gpc,
        dnt: ask.dnt,
    };
    let mut who = Vec::new();
    if !ask.user_agent.is_empty() {
        who.push(format!("User-Agent \"{}\"", ask.user_agent));
    }
    if let Some(ip) = ask.client {
        who.push(format!("from {ip}"));
    }
    if ask.gpc {
        who.push("Sec-GPC: 1".to_owned());
    }
    if ask.dnt {
        who.push("DNT: 1".to_owned());
    }
    let mut out = format!("\nVisit: {}\n", who.join(", "));
    out.push_str(&format!("  rules in {conf}: {}\n", rules(settings)));
    match visits.rule_why(&visitor) {
        None => {
            out.push_str("  COUNTED: no rule in visits holds; the tracker's writes go to Ackee\n");
            if ask.client.is_none() && !settings.ignore_networks.is_empty() {
                out.push_str("  (give --client to check visits.ignore_networks)\n");
            }
        }
        Some((reason, what)) => {
            let why = match reason {
                Reason::Network => {
                    format!("the client is in visits.ignore_networks (\"{what}\")")
                }
                Reason::Gpc => {
                    "the browser sends Sec-GPC: 1 and visits.honor_gpc is true".to_owned()
                }
                Reason::Dnt => "the browser sends DNT: 1 and visits.honor_dnt is true".to_owned(),
                Reason::Bot => format!(
                    "the user agent matches \"{what}\" of isbot's list (visits.ignore_bots)"
                ),
                Reason::IgnoredId => what,
            };
            out.push_str(&format!("  IGNORED at the edge: {why}\n"));
            out.push_str(&format!(
                "  createRecord and createAction get Ackee's answer for an ignored visit (id {FIXED_ID}), the tracker stops quietly, and Ackee never sees them; counted in ackee_gateway_visits_ignored_total{{reason=\"{}\"}}\n",
                reason.as_str()
            ));
        }
    }
    if ask.client.is_some() {
        out.push_str("  (--client is the address as the gateway resolves it: the peer, or behind a proxy in trusted_proxies the rightmost X-Forwarded-For address that is not itself trusted)\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarded::Cidr;

    #[test]
    fn the_verdict_names_the_rule_that_decides() {
        let settings = VisitSettings {
            ignore_bots: true,
            ignore_networks: vec![Cidr::parse("192.0.2.0/24").unwrap()],
            honor_gpc: true,
            honor_dnt: false,
        };
        let ask = |ua: &str, client: &str, gpc: bool, dnt: bool| VisitAsk {
            user_agent: ua.to_owned(),
            client: client.parse().ok(),
            gpc,
            dnt,
        };
        let headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/138.0.0.0 Safari/537.36";
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
        let cases: &[(VisitAsk, &str)] = &[
            (
                ask(headless, "", false, false),
                "matches \"headless\" of isbot's list",
            ),
            (
                ask(chrome, "192.0.2.7", false, false),
                "in visits.ignore_networks (\"192.0.2.0/24\")",
            ),
            (
                ask(chrome, "198.51.100.7", true, false),
                "Sec-GPC: 1 and visits.honor_gpc",
            ),
            (ask(chrome, "198.51.100.7", false, true), "COUNTED"),
            (ask(chrome, "", false, false), "give --client"),
        ];
        for (a, want) in cases {
            let text = verdict(&settings, a, "gw.yaml").unwrap();
            assert!(text.contains(want), "{a:?}: {text}");
        }
        let text = verdict(&settings, &ask(headless, "", false, false), "gw.yaml").unwrap();
        assert!(text.contains("rules in gw.yaml: 1 network ignored (192.0.2.0/24); Sec-GPC honoured; DNT not honoured; bots ignored"), "{text}");
    }
}
