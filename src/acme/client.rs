//! One order against the CA, with instant-acme: the account (created once per CA directory and
//! kept in the state directory), the order, each authorization's challenge published in
//! [`Challenges`] and withdrawn afterwards, the key and CSR, the certificate. Tokio only, no
//! pingora: the background service in `server/acme.rs` calls [`order`] and acts on the result.
//!
//! Every failure comes back as a [`Problem`]: the CA's problem document (type and detail) when
//! the CA answered with one, a challenge's own error when validation failed, otherwise our
//! words for what broke (the connection, a timeout, the disk).

use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Error, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use super::challenges::Challenges;
use super::settings::{AcmeSettings, ChallengeKind};
use super::status::Problem;
use super::store::{Store, write_atomic};

/// How long one whole order may take before it counts as failed.
pub const ORDER_LIMIT: Duration = Duration::from_secs(300);

/// A certificate just issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The chain, leaf first, PEM.
    pub chain_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

fn problem(e: Error) -> Problem {
    match e {
        Error::Api(p) => from_api(&p),
        Error::Timeout(_) => Problem {
            kind: String::new(),
            detail: "the CA did not finish the order in time".to_owned(),
        },
        other => Problem {
            kind: String::new(),
            detail: format!("cannot talk to the CA: {}", chain(&other)),
        },
    }
}

/// An error and its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn from_api(p: &instant_acme::Problem) -> Problem {
    let mut detail = p.detail.clone().unwrap_or_else(|| "no detail".to_owned());
    for sub in &p.subproblems {
        if let Some(d) = &sub.detail {
            detail.push_str("; ");
            detail.push_str(d);
        }
    }
    Problem {
        kind: p.r#type.clone().unwrap_or_default(),
        detail,
    }
}

fn own(detail: impl Into<String>) -> Problem {
    Problem {
        kind: String::new(),
        detail: detail.into(),
    }
}

/// The account for the configured CA: restored from the state directory, or created (and
/// stored, 0600) the first time.
async fn account(settings: &AcmeSettings, store: &Store) -> Result<Account, Problem> {
    let builder = match &settings.directory_ca {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    }
    .map_err(problem)?;
    let file = store.account_file(&settings.directory);
    if let Ok(bytes) = std::fs::read(&file)
        && let Ok(credentials) = serde_json::from_slice::<AccountCredentials>(&bytes)
    {
        return builder.from_credentials(credentials).await.map_err(problem);
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let binding = settings
        .external_account
        .as_ref()
        .map(|e| ExternalAccountKey::new(e.key_id.clone(), &e.hmac_key));
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder
        .create(&new, settings.directory.clone(), binding.as_ref())
        .await
        .map_err(problem)?;
    let json = serde_json::to_vec(&credentials).map_err(|e| own(e.to_string()))?;
    write_atomic(&file, &json).map_err(|e| {
        own(format!(
            "cannot store the account in {}: {e}",
            file.display()
        ))
    })?;
    Ok(account)
}

/// What was published for an order, to withdraw once it is over.
enum Published {
    Http(String),
    Alpn(String),
}

/// Orders the certificate for `settings`: creates or restores the account, answers every
/// pending authorization's challenge through `challenges`, and returns the new chain and key.
pub async fn order(
    settings: &AcmeSettings,
    store: &Store,
    challenges: &Challenges,
) -> Result<Issued, Problem> {
    let mut published = Vec::new();
    let result = tokio::time::timeout(
        ORDER_LIMIT,
        run(settings, store, challenges, &mut published),
    )
    .await
    .unwrap_or_else(|_| {
        Err(own(format!(
            "the order did not finish within {} s",
            ORDER_LIMIT.as_secs()
        )))
    });
    for p in published {
        match p {
            Published::Http(token) => challenges.remove_http(&token),
            Published::Alpn(name) => challenges.remove_alpn(&name),
        }
    }
    result
}

async fn run(
    settings: &AcmeSettings,
    store: &Store,
    challenges: &Challenges,
    published: &mut Vec<Published>,
) -> Result<Issued, Problem> {
    let account = account(settings, store).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(problem)?;
    let kind = match settings.challenge {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(problem)?;
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(own(format!(
                        "the CA's authorization for {} is {other:?}",
                        authorization.identifier()
                    )));
                }
            }
            let name = authorization.identifier().to_string();
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                return Err(own(format!(
                    "the CA offers no {} challenge for {name}",
                    settings.challenge.as_str()
                )));
            };
            let key_authorization = challenge.key_authorization();
            match settings.challenge {
                ChallengeKind::Http01 => {
                    challenges
                        .put_http(&challenge.token, key_authorization.as_str())
                        .map_err(|e| own(format!("cannot publish the HTTP-01 answer: {e}")))?;
                    published.push(Published::Http(challenge.token.clone()));
                }
                ChallengeKind::TlsAlpn01 => {
                    challenges
                        .put_alpn(&name, key_authorization.digest().as_ref())
                        .map_err(own)?;
                    published.push(Published::Alpn(name.clone()));
                }
            }
            challenge.set_ready().await.map_err(problem)?;
        }
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = order.poll_ready(&retries).await.map_err(problem)?;
    if status != OrderStatus::Ready {
        return Err(why_invalid(&mut order, status).await);
    }
    let key_pem = order.finalize().await.map_err(problem)?;
    let chain_pem = order.poll_certificate(&retries).await.map_err(problem)?;
    Ok(Issued { chain_pem, key_pem })
}

/// Why an order did not become ready: a challenge's error if the CA gave one (the usual case:
/// it could not reach the gateway, or got the wrong answer), else the order's.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> Problem {
    if let Some(e) = &order.state().error {
        return from_api(e);
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        for c in &authorization.challenges {
            if let Some(e) = &c.error {
                return from_api(e);
            }
        }
    }
    own(format!("the order is {status:?}, not ready"))
}
