//! `[[sources]]`: one entry per source, tagged by `type`, each kind with
//! only its own fields. A field of another kind (`include` on a BEIR
//! source) is an unknown field, named in the error, not silently ignored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    /// A directory tree.
    Fs(FsSourceConfig),
    /// A BEIR `corpus.jsonl`.
    Beir(BeirSourceConfig),
    /// A git repository, read at the head of one branch.
    Git(GitSourceConfig),
    /// A web site, crawled from seed pages or read from sitemaps.
    Web(WebSourceConfig),
    /// Objects under one prefix of an S3 bucket, or of an S3-compatible
    /// server.
    S3(S3SourceConfig),
}

/// Declares one kind's configuration: the fields every kind has (`name`,
/// `collection`, `tags`), then its own. Each kind is a struct of its own,
/// so serde rejects another kind's fields; the macro keeps the shared ones
/// written once.
macro_rules! source_kind {
    (
        $(#[$meta:meta])*
        $kind:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $kind {
            /// The source's name: a collection name, and the `source` of
            /// its documents.
            pub name: String,
            /// Collection the source's documents go into. Default: the
            /// source name.
            #[serde(default)]
            pub collection: Option<String>,
            /// Tags added to every document of this source.
            #[serde(default)]
            pub tags: Vec<String>,
            /// `quarry serve` syncs the source this often (`30s`, `5m`,
            /// `1h`, `1d`). Default: only when asked.
            #[serde(default)]
            pub every: Option<Every>,
            $($(#[$field_meta])* pub $field: $ty,)*
        }
    };
}

source_kind! {
    /// `type = "fs"`.
    FsSourceConfig {
        /// The directory.
        path: PathBuf,
        /// Glob patterns of files to include. Default: everything.
        #[serde(default)]
        include: Vec<String>,
        /// Glob patterns of files to skip.
        #[serde(default)]
        exclude: Vec<String>,
        /// Honour `.gitignore` and `.ignore` files. Default: true.
        #[serde(default = "yes")]
        gitignore: bool,
        /// Follow symbolic links; loops are detected. Default: false.
        #[serde(default)]
        follow_symlinks: bool,
        /// `quarry serve` re-syncs the folder within seconds of a change.
        #[serde(default)]
        watch: bool,
    }
}

source_kind! {
    /// `type = "git"`.
    GitSourceConfig {
        /// Anything git understands: `https://`, `ssh://`, `file://`, a path.
        url: String,
        /// Default: the remote's default branch.
        #[serde(default)]
        branch: Option<String>,
        /// Glob patterns of paths to include. Default: every file.
        #[serde(default)]
        include: Vec<String>,
        /// Glob patterns of paths to skip.
        #[serde(default)]
        exclude: Vec<String>,
        /// Citation links: `{sha}` and `{path}` are filled in, e.g.
        /// `https://github.com/org/repo/blob/{sha}/{path}`. Default: the
        /// URL with the commit and path in its fragment.
        #[serde(default)]
        web_url: Option<String>,
    }
}

source_kind! {
    /// `type = "web"`.
    WebSourceConfig {
        /// Seed pages; a URL ending in `sitemap.xml` is read as a sitemap
        /// (nested sitemap indexes too). Links are followed within each
        /// seed's host.
        urls: Vec<String>,
        /// At most this many pages. Default: 1000.
        #[serde(default = "default_max_pages")]
        max_pages: usize,
        /// Links followed at most this deep from a seed. Default: 3.
        #[serde(default = "default_max_depth")]
        max_depth: usize,
        /// Glob patterns of URL paths to include (`/docs/**`). Default: all.
        #[serde(default)]
        include: Vec<String>,
        /// Glob patterns of URL paths to skip.
        #[serde(default)]
        exclude: Vec<String>,
        /// One request's timeout; a page slower than this fails the crawl.
        /// Default: 30.
        #[serde(default = "default_timeout_secs")]
        timeout_secs: u64,
        /// At most this many requests a second to any one host (requests
        /// are sequential, so also one at a time); a `Crawl-delay` in
        /// `robots.txt` that asks for more spacing wins. Default: 10.
        #[serde(default = "default_requests_per_second")]
        requests_per_second: f64,
    }
}

fn default_requests_per_second() -> f64 {
    10.0
}

source_kind! {
    /// `type = "s3"`. Credentials come from the usual `AWS_*` variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    S3SourceConfig {
        /// `s3://bucket/prefix/`; every object under the prefix is a
        /// document, its key relative to the prefix its id.
        url: String,
        /// An S3-compatible server (`http://127.0.0.1:9000`). Default: AWS.
        #[serde(default)]
        endpoint: Option<String>,
        /// Default: `AWS_REGION`, or `us-east-1`.
        #[serde(default)]
        region: Option<String>,
        /// Glob patterns of keys (relative to the prefix) to include.
        #[serde(default)]
        include: Vec<String>,
        /// Glob patterns of keys to skip.
        #[serde(default)]
        exclude: Vec<String>,
        /// One request's timeout; a listing slower than this fails.
        /// Default: 30.
        #[serde(default = "default_timeout_secs")]
        timeout_secs: u64,
    }
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_max_pages() -> usize {
    1000
}

fn default_max_depth() -> usize {
    3
}

source_kind! {
    /// `type = "beir"`.
    BeirSourceConfig {
        /// A `corpus.jsonl`, or a dataset directory holding one.
        path: PathBuf,
    }
}

fn yes() -> bool {
    true
}

impl FsSourceConfig {
    /// A directory source with the defaults: everything included,
    /// `.gitignore` honoured, links not followed, collection = name, no
    /// schedule.
    pub fn new(name: &str, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            path: path.into(),
            collection: None,
            tags: Vec::new(),
            every: None,
            include: Vec::new(),
            exclude: Vec::new(),
            gitignore: true,
            follow_symlinks: false,
            watch: false,
        }
    }
}

impl BeirSourceConfig {
    pub fn new(name: &str, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            path: path.into(),
            collection: None,
            tags: Vec::new(),
            every: None,
        }
    }
}

/// How often a source is synced: a number and a unit, `s`, `m`, `h` or `d`
/// (`90s`, `5m`, `1h`). At least one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(pub std::time::Duration);

impl std::str::FromStr for Every {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let unit_secs = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => 0,
        };
        match n.parse::<u64>() {
            Ok(n) if n > 0 && unit_secs > 0 => Ok(Self(std::time::Duration::from_secs(
                n.saturating_mul(unit_secs),
            ))),
            _ => Err(format!(
                "every = {s:?} is not a duration; write a number and s, m, h or d, e.g. \"5m\""
            )),
        }
    }
}

impl std::fmt::Display for Every {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

impl Serialize for Every {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The fields every kind has, whichever it is.
macro_rules! common {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            SourceConfig::Fs($s) => $e,
            SourceConfig::Beir($s) => $e,
            SourceConfig::Git($s) => $e,
            SourceConfig::Web($s) => $e,
            SourceConfig::S3($s) => $e,
        }
    };
}

impl SourceConfig {
    /// A directory source with the defaults (see [`FsSourceConfig::new`]).
    pub fn fs(name: &str, path: impl Into<PathBuf>) -> Self {
        Self::Fs(FsSourceConfig::new(name, path))
    }

    pub fn beir(name: &str, path: impl Into<PathBuf>) -> Self {
        Self::Beir(BeirSourceConfig::new(name, path))
    }

    pub fn name(&self) -> &str {
        common!(self, s => &s.name)
    }

    /// The collection the source feeds: its own name unless set.
    pub fn collection(&self) -> &str {
        common!(self, s => s.collection.as_deref().unwrap_or(&s.name))
    }

    pub fn tags(&self) -> &[String] {
        common!(self, s => &s.tags)
    }

    /// The schedule `quarry serve` keeps it on.
    pub fn every(&self) -> Option<std::time::Duration> {
        common!(self, s => s.every.map(|e| e.0))
    }

    /// The folder `quarry serve` watches for changes, if any.
    pub fn watched_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Fs(c) if c.watch => Some(&c.path),
            _ => None,
        }
    }

    /// The `type` it is configured with.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Fs(_) => "fs",
            Self::Beir(_) => "beir",
            Self::Git(_) => "git",
            Self::Web(_) => "web",
            Self::S3(_) => "s3",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        sources: Vec<SourceConfig>,
    }

    fn parse(toml_text: &str) -> Result<Vec<SourceConfig>, String> {
        toml::from_str::<File>(toml_text)
            .map(|f| f.sources)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_takes_its_own_fields_only() {
        let s = parse(
            "[[sources]]\nname = \"docs\"\ntype = \"fs\"\npath = \"d\"\ninclude = [\"*.md\"]\n\
             [[sources]]\nname = \"sf\"\ntype = \"beir\"\npath = \"c.jsonl\"\ncollection = \"x\"\n",
        )
        .unwrap();
        let SourceConfig::Fs(fs) = &s[0] else {
            panic!("{s:?}")
        };
        assert_eq!(
            (fs.include.as_slice(), fs.gitignore),
            (&["*.md".to_string()][..], true)
        );
        assert_eq!((s[1].kind(), s[1].collection()), ("beir", "x"));
        let err =
            parse("[[sources]]\nname = \"sf\"\ntype = \"beir\"\npath = \"c\"\ninclude = []\n")
                .unwrap_err();
        assert!(err.contains("include"), "{err}");
        let err = parse("[[sources]]\nname = \"g\"\ntype = \"ftp\"\npath = \"c\"\n").unwrap_err();
        assert!(err.contains("ftp") && err.contains("fs"), "{err}");
        let s = parse("[[sources]]\nname = \"n\"\ntype = \"fs\"\npath = \"p\"\nevery = \"2m\"\nwatch = true\n")
            .unwrap();
        assert_eq!(s[0].every(), Some(std::time::Duration::from_secs(120)));
        assert_eq!(s[0].watched_path(), Some(std::path::Path::new("p")));
        for bad in ["0s", "5", "3w", "-1m", ""] {
            let err = parse(&format!(
                "[[sources]]\nname = \"n\"\ntype = \"beir\"\npath = \"p\"\nevery = \"{bad}\"\n"
            ))
            .unwrap_err();
            assert!(err.contains("not a duration"), "{bad}: {err}");
        }
    }
}
