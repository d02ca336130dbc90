//! Bots, crawlers, headless browsers and monitoring tools by their `User-Agent`: the pattern
//! list the [isbot](https://github.com/omrilotan/isbot) project publishes (vendored in
//! `src/visits/isbot/`, with its licence and `update.sh`), translated once by
//! [`super::jsregex`] and compiled into one regular expression, so a user agent is read in one
//! pass of one automaton, without allocating.
//!
//! isbot's `isbot()` is `new RegExp(list.join("|"), "i").test(ua)` on a non-empty string; the
//! matcher here answers the same for every user agent (tests/visits.rs runs both on isbot's own
//! fixtures). The haystack is bytes and Unicode is off (`(?i-u)`), so a `User-Agent` that is
//! not UTF-8 is read too.

use regex::bytes::{Regex, RegexBuilder};

use super::jsregex::{Untranslatable, translate};

/// isbot's pattern list, as published in the npm package (its `list` export).
pub const ISBOT_PATTERNS: &str = include_str!("isbot/patterns.json");

/// The isbot version the vendored list comes from.
pub const ISBOT_VERSION: &str = "5.2.4";

/// The compiled union of the patterns, and the patterns as written (for `explain`).
pub struct BotMatcher {
    all: Regex,
    patterns: Vec<String>,
}

impl std::fmt::Debug for BotMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BotMatcher({} patterns)", self.patterns.len())
    }
}

/// The `regex` crate's default size limits are for patterns a user types; isbot's union of
/// about 200 patterns with counted repetitions (`[^ ]{50,}`) needs more room to compile.
const SIZE_LIMIT: usize = 64 << 20;

/// Compiles one translated pattern for a haystack of bytes, without case or Unicode.
fn compile(rust: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("(?i-u){rust}"))
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

impl BotMatcher {
    /// The matcher for the vendored isbot list.
    pub fn isbot() -> Result<BotMatcher, String> {
        let list: Vec<String> = serde_json::from_str(ISBOT_PATTERNS)
            .map_err(|e| format!("src/visits/isbot/patterns.json is not a list of texts: {e}"))?;
        BotMatcher::new(list)
    }

    /// A matcher for a list of JavaScript patterns, as isbot's `createIsbotFromList` takes.
    pub fn new(patterns: Vec<String>) -> Result<BotMatcher, String> {
        let translated = patterns
            .iter()
            .map(|p| translate(p).map(|t| format!("(?:{t})")))
            .collect::<Result<Vec<_>, Untranslatable>>()
            .map_err(|e| e.to_string())?;
        if translated.is_empty() {
            return Err("the bot pattern list is empty".to_owned());
        }
        let all = compile(&translated.join("|"))?;
        Ok(BotMatcher { all, patterns })
    }

    /// Whether a user agent is a bot's. An empty one is not, as in isbot.
    pub fn is_bot(&self, user_agent: &[u8]) -> bool {
        !user_agent.is_empty() && self.all.is_match(user_agent)
    }

    /// The first pattern that matches, as isbot's `isbotPattern` finds it. Compiles each
    /// pattern in turn: for `explain`, never on a request path.
    pub fn first_pattern(&self, user_agent: &[u8]) -> Option<&str> {
        if user_agent.is_empty() {
            return None;
        }
        self.patterns
            .iter()
            .find(|p| {
                translate(p)
                    .ok()
                    .and_then(|t| compile(&t).ok())
                    .is_some_and(|re| re.is_match(user_agent))
            })
            .map(String::as_str)
    }

    /// How many patterns the list has.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether the list is empty (never: [`BotMatcher::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Real user agents of current browsers, desktop and mobile: never a bot.
    pub(crate) const BROWSERS: &[(&str, &str)] = &[
        (
            "Chrome, Windows",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
        ),
        (
            "Chrome, macOS",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
        ),
        (
            "Chrome, Linux",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
        ),
        (
            "Chrome, Android",
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36",
        ),
        (
            "Chrome, iPhone",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/138.0.7204.119 Mobile/15E148 Safari/604.1",
        ),
        (
            "Firefox, Windows",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0",
        ),
        (
            "Firefox, macOS",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:140.0) Gecko/20100101 Firefox/140.0",
        ),
        (
            "Firefox, Linux",
            "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
        ),
        (
            "Firefox, Android",
            "Mozilla/5.0 (Android 15; Mobile; rv:140.0) Gecko/140.0 Firefox/140.0",
        ),
        (
            "Firefox, iPhone",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/140.0 Mobile/15E148 Safari/605.1.15",
        ),
        (
            "Safari, macOS",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15",
        ),
        (
            "Safari, iPhone",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
        ),
        (
            "Safari, iPad",
            "Mozilla/5.0 (iPad; CPU OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
        ),
        (
            "Edge, Windows",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Edg/138.0.0.0",
        ),
        (
            "Edge, macOS",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Edg/138.0.0.0",
        ),
        (
            "Edge, Android",
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36 EdgA/138.0.0.0",
        ),
        (
            "Edge, iPhone",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 EdgiOS/138.0.3351.77 Mobile/15E148 Safari/605.1.15",
        ),
        (
            "Samsung Internet, Android",
            "Mozilla/5.0 (Linux; Android 15; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36",
        ),
        (
            "Opera, Windows",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36 OPR/120.0.0.0",
        ),
        (
            "Chrome in an Android WebView",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/138.0.7204.63 Mobile Safari/537.36",
        ),
        (
            "the load harness's user agent",
            "Mozilla/5.0 (X11; Linux x86_64) ackee-gateway-load-harness",
        ),
    ];

    /// Bots, crawlers, headless browsers and monitoring tools: always a bot.
    pub(crate) const BOTS: &[(&str, &str)] = &[
        (
            "Googlebot",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ),
        (
            "Googlebot smartphone",
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.7204.92 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ),
        (
            "Bingbot",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        ),
        (
            "HeadlessChrome (Puppeteer's and Playwright's default)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/138.0.0.0 Safari/537.36",
        ),
        (
            "Debian's Chromium with --headless",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/140.0.7339.185 Safari/537.36",
        ),
        (
            "a user agent naming Playwright",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Playwright/1.54.1",
        ),
        (
            "Lighthouse",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        ),
        ("curl", "curl/8.14.1"),
        ("Wget", "Wget/1.25.0"),
        ("python-requests", "python-requests/2.32.4"),
        ("Go", "Go-http-client/1.1"),
        ("Node's fetch", "node"),
        (
            "UptimeRobot",
            "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        ),
        (
            "Pingdom",
            "Mozilla/5.0 (compatible; pingdom.com_bot_version_1.4_(http://www.pingdom.com/))",
        ),
        (
            "StatusCake",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 StatusCake",
        ),
        (
            "Site24x7",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Site24x7",
        ),
        (
            "Better Stack",
            "Better Stack Better Uptime Bot Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
        ),
        (
            "Checkly",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Checkly/1.0 (https://www.checklyhq.com)",
        ),
        ("Prometheus blackbox exporter", "Blackbox Exporter/0.27.0"),
        (
            "Selenium",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Selenium",
        ),
        (
            "PhantomJS",
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        ),
        (
            "GPTBot",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        ),
    ];

    #[test]
    fn browsers_are_never_bots_and_bots_always_are() {
        let m = BotMatcher::isbot().unwrap();
        for (name, ua) in BROWSERS {
            assert!(
                !m.is_bot(ua.as_bytes()),
                "{name} is taken for a bot by {:?}: {ua}",
                m.first_pattern(ua.as_bytes())
            );
        }
        for (name, ua) in BOTS {
            assert!(m.is_bot(ua.as_bytes()), "{name} is not recognised: {ua}");
        }
        assert!(!m.is_bot(b""), "no user agent is not a bot, as in isbot");
        assert!(
            m.is_bot(b"HeadlessChrome \xff\xfe"),
            "bytes that are not UTF-8"
        );
        let headless = BOTS[3].1.as_bytes();
        assert_eq!(
            m.first_pattern(headless),
            Some("headless"),
            "as isbotPattern says"
        );
    }

    #[test]
    fn every_vendored_pattern_translates() {
        let m = BotMatcher::isbot().unwrap();
        assert!(m.len() > 150, "{} patterns", m.len());
        assert!(!m.is_empty());
        assert!(BotMatcher::new(Vec::new()).is_err());
        let e = BotMatcher::new(vec!["a(?=b)".into()]).unwrap_err();
        assert!(e.contains("positive lookarounds"), "{e}");
    }
}
