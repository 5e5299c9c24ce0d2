//! What the detectors find: the kinds of sensitive value and which of them a
//! scanner looks for.

use std::fmt;

/// A kind of sensitive value. The order is the priority when two findings
/// overlap: the earlier kind wins, so values proven by a checksum or a
/// vendor prefix beat shape-only guesses (a phone number never claims the
/// digits of a card number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PrivateKey,
    Jwt,
    UrlCredentials,
    AwsAccessKey,
    AwsSecretKey,
    GithubToken,
    SlackToken,
    StripeKey,
    GitlabToken,
    GoogleApiKey,
    OpenaiKey,
    AnthropicKey,
    NpmToken,
    PypiToken,
    /// Stored credential material: a password hash or verifier (SCRAM,
    /// md5, MySQL native and caching_sha2, crypt(3) formats, Django, LDAP).
    /// Whoever holds one can crack it offline or, for SCRAM and MySQL's
    /// formats, log in with it.
    PasswordHash,
    JsonSecret,
    Iban,
    ItFiscalCode,
    EsNie,
    UkNino,
    FiHetu,
    SePersonnummer,
    KrRrn,
    CnResidentId,
    Card,
    UsSsn,
    BrCpf,
    FrNir,
    PlPesel,
    DeTaxId,
    InAadhaar,
    CaSin,
    NlBsn,
    EsDni,
    Email,
    Ipv4,
    Ipv6,
    Phone,
    Person,
}

impl Kind {
    pub const ALL: [Kind; 39] = [
        Kind::PrivateKey,
        Kind::Jwt,
        Kind::UrlCredentials,
        Kind::AwsAccessKey,
        Kind::AwsSecretKey,
        Kind::GithubToken,
        Kind::SlackToken,
        Kind::StripeKey,
        Kind::GitlabToken,
        Kind::GoogleApiKey,
        Kind::OpenaiKey,
        Kind::AnthropicKey,
        Kind::NpmToken,
        Kind::PypiToken,
        Kind::PasswordHash,
        Kind::JsonSecret,
        Kind::Iban,
        Kind::ItFiscalCode,
        Kind::EsNie,
        Kind::UkNino,
        Kind::FiHetu,
        Kind::SePersonnummer,
        Kind::KrRrn,
        Kind::CnResidentId,
        Kind::Card,
        Kind::UsSsn,
        Kind::BrCpf,
        Kind::FrNir,
        Kind::PlPesel,
        Kind::DeTaxId,
        Kind::InAadhaar,
        Kind::CaSin,
        Kind::NlBsn,
        Kind::EsDni,
        Kind::Email,
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Phone,
        Kind::Person,
    ];

    /// The national identifiers. The standard set finds them in the forms
    /// they are printed in (letters, punctuation or a structure no counter
    /// has: `RSSMRA85T10A562S`, `12345678Z`, `123.456.789-09`, `AB 12 34 56
    /// C`). A bare run of 9, 11 or 12 digits passes some country's check
    /// digit often enough to matter in tables full of ids, so bare runs are
    /// taken only next to a word that names the identifier ("PESEL", "BSN",
    /// "CPF"…), unless a policy lists the detector by name or the
    /// `national_ids` group, which accepts them anywhere.
    pub const NATIONAL_IDS: [Kind; 15] = [
        Kind::UkNino,
        Kind::DeTaxId,
        Kind::FrNir,
        Kind::EsDni,
        Kind::EsNie,
        Kind::ItFiscalCode,
        Kind::NlBsn,
        Kind::PlPesel,
        Kind::BrCpf,
        Kind::InAadhaar,
        Kind::CaSin,
        Kind::SePersonnummer,
        Kind::FiHetu,
        Kind::KrRrn,
        Kind::CnResidentId,
    ];

    /// The name used in policies, audit records and the evaluation corpus.
    pub fn name(self) -> &'static str {
        match self {
            Kind::PrivateKey => "private_key",
            Kind::Jwt => "jwt",
            Kind::UrlCredentials => "url_credentials",
            Kind::AwsAccessKey => "aws_access_key",
            Kind::AwsSecretKey => "aws_secret_key",
            Kind::GithubToken => "github_token",
            Kind::SlackToken => "slack_token",
            Kind::StripeKey => "stripe_key",
            Kind::GitlabToken => "gitlab_token",
            Kind::GoogleApiKey => "google_api_key",
            Kind::OpenaiKey => "openai_key",
            Kind::AnthropicKey => "anthropic_key",
            Kind::NpmToken => "npm_token",
            Kind::PypiToken => "pypi_token",
            Kind::PasswordHash => "password_hash",
            Kind::JsonSecret => "json_secret",
            Kind::Iban => "iban",
            Kind::ItFiscalCode => "it_fiscal_code",
            Kind::EsNie => "es_nie",
            Kind::UkNino => "uk_nino",
            Kind::FiHetu => "fi_hetu",
            Kind::SePersonnummer => "se_personnummer",
            Kind::KrRrn => "kr_rrn",
            Kind::CnResidentId => "cn_resident_id",
            Kind::Card => "card",
            Kind::UsSsn => "us_ssn",
            Kind::BrCpf => "br_cpf",
            Kind::FrNir => "fr_nir",
            Kind::PlPesel => "pl_pesel",
            Kind::DeTaxId => "de_tax_id",
            Kind::InAadhaar => "in_aadhaar",
            Kind::CaSin => "ca_sin",
            Kind::NlBsn => "nl_bsn",
            Kind::EsDni => "es_dni",
            Kind::Email => "email",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Phone => "phone",
            Kind::Person => "person",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The label a redacted value is replaced with: `<EMAIL>`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::PrivateKey => "<PRIVATE_KEY>",
            Kind::Jwt => "<JWT>",
            Kind::UrlCredentials => "<PASSWORD>",
            Kind::AwsAccessKey => "<AWS_ACCESS_KEY>",
            Kind::AwsSecretKey => "<AWS_SECRET_KEY>",
            Kind::GithubToken => "<GITHUB_TOKEN>",
            Kind::SlackToken => "<SLACK_TOKEN>",
            Kind::StripeKey => "<STRIPE_KEY>",
            Kind::GitlabToken => "<GITLAB_TOKEN>",
            Kind::GoogleApiKey => "<GOOGLE_API_KEY>",
            Kind::OpenaiKey => "<OPENAI_KEY>",
            Kind::AnthropicKey => "<ANTHROPIC_KEY>",
            Kind::NpmToken => "<NPM_TOKEN>",
            Kind::PypiToken => "<PYPI_TOKEN>",
            Kind::PasswordHash => "<PASSWORD_HASH>",
            Kind::JsonSecret => "<SECRET>",
            Kind::Iban => "<IBAN>",
            Kind::ItFiscalCode => "<IT_FISCAL_CODE>",
            Kind::EsNie => "<ES_NIE>",
            Kind::UkNino => "<UK_NINO>",
            Kind::FiHetu => "<FI_HETU>",
            Kind::SePersonnummer => "<SE_PERSONNUMMER>",
            Kind::KrRrn => "<KR_RRN>",
            Kind::CnResidentId => "<CN_RESIDENT_ID>",
            Kind::Card => "<CARD>",
            Kind::UsSsn => "<US_SSN>",
            Kind::BrCpf => "<BR_CPF>",
            Kind::FrNir => "<FR_NIR>",
            Kind::PlPesel => "<PL_PESEL>",
            Kind::DeTaxId => "<DE_TAX_ID>",
            Kind::InAadhaar => "<IN_AADHAAR>",
            Kind::CaSin => "<CA_SIN>",
            Kind::NlBsn => "<NL_BSN>",
            Kind::EsDni => "<ES_DNI>",
            Kind::Email => "<EMAIL>",
            Kind::Ipv4 => "<IPV4>",
            Kind::Ipv6 => "<IPV6>",
            Kind::Phone => "<PHONE>",
            Kind::Person => "<PERSON>",
        }
    }

    /// Secrets are credentials rather than personal data: masked whole,
    /// whatever the strategy, because any part of a key helps an attacker.
    pub fn is_secret(self) -> bool {
        self <= Kind::JsonSecret
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of kinds a scanner looks for, and the national identifiers it
/// also takes as bare digit runs without a naming word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detectors {
    kinds: u64,
    bare: u64,
}

impl Detectors {
    pub fn none() -> Detectors {
        Detectors { kinds: 0, bare: 0 }
    }

    /// Every detector, national identifiers (bare runs too) and the
    /// JSON-key rule included.
    pub fn all() -> Detectors {
        Kind::ALL
            .into_iter()
            .fold(Detectors::none(), Detectors::with)
            .with_bare_national_ids(&Kind::NATIONAL_IDS)
    }

    /// What a policy gets unless it says otherwise: everything except the
    /// JSON-key rule and person names, which are opt-in, with national
    /// identifiers found in their printed forms only (see
    /// [`Kind::NATIONAL_IDS`]). (Names cost a lookup per capitalised word
    /// pair: prose scans several times slower with them, see
    /// benches/RESULTS.md.)
    pub fn standard() -> Detectors {
        let mut set = Detectors::all()
            .without(Kind::JsonSecret)
            .without(Kind::Person);
        set.bare = 0;
        set
    }

    pub fn with(self, kind: Kind) -> Detectors {
        Detectors {
            kinds: self.kinds | kind.bit(),
            ..self
        }
    }

    pub fn without(self, kind: Kind) -> Detectors {
        Detectors {
            kinds: self.kinds & !kind.bit(),
            bare: self.bare & !kind.bit(),
        }
    }

    /// Takes these national identifiers as bare digit runs anywhere, not
    /// only next to a word that names them.
    pub fn with_bare_national_ids(self, kinds: &[Kind]) -> Detectors {
        let bits = kinds
            .iter()
            .filter(|k| Kind::NATIONAL_IDS.contains(k))
            .fold(0, |acc, k| acc | k.bit());
        Detectors {
            bare: self.bare | bits,
            ..self
        }
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// Whether a bare digit run of this national identifier counts without
    /// a naming word before it.
    pub fn takes_bare(self, kind: Kind) -> bool {
        self.contains(kind) && self.bare & kind.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.kinds == 0
    }

    pub fn kinds(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl Default for Detectors {
    fn default() -> Self {
        Detectors::standard()
    }
}

/// One detected value: its kind and its byte range in the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        let mut names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
    }

    #[test]
    fn standard_set_leaves_out_the_opt_in_detectors() {
        let set = Detectors::standard();
        assert!(set.contains(Kind::Email) && set.contains(Kind::Card));
        assert!(set.contains(Kind::NlBsn) && !set.takes_bare(Kind::NlBsn));
        assert!(!set.contains(Kind::JsonSecret) && !set.contains(Kind::Person));
        assert!(Detectors::all().takes_bare(Kind::PlPesel));
        assert!(!Detectors::all()
            .without(Kind::PlPesel)
            .takes_bare(Kind::PlPesel));
        assert_eq!(Detectors::all().kinds().count(), Kind::ALL.len());
    }
}
