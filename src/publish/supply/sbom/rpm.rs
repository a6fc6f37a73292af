//! RPM's SQLite package database (`/var/lib/rpm/rpmdb.sqlite`, Rocky and
//! RHEL 9, Fedora 33+): one header blob per package in table `Packages`,
//! read for name, epoch, version, release, arch and source RPM. The
//! header is rpm's: an index count and a data length (big-endian u32),
//! then 16-byte entries (tag, type, offset, count) into the data.

use super::Package;

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const ARCH: u32 = 1022;
const SOURCE_RPM: u32 = 1044;
const INT32: u32 = 4;
const STRING: u32 = 6;

/// One header's entries, looked up by tag.
struct Header<'a> {
    entries: Vec<(u32, u32, usize)>,
    data: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Option<Header<'a>> {
        let count = u32_at(blob, 0)? as usize;
        let len = u32_at(blob, 4)? as usize;
        let start = 8usize.checked_add(count.checked_mul(16)?)?;
        let data = blob.get(start..start.checked_add(len)?)?;
        let entries = (0..count)
            .map(|i| {
                let at = 8 + 16 * i;
                Some((
                    u32_at(blob, at)?,
                    u32_at(blob, at + 4)?,
                    u32_at(blob, at + 8)? as usize,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Header { entries, data })
    }

    fn string(&self, tag: u32) -> Option<String> {
        let &(_, _, at) = self
            .entries
            .iter()
            .find(|(t, kind, _)| *t == tag && *kind == STRING)?;
        let rest = self.data.get(at..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn int(&self, tag: u32) -> Option<u32> {
        let &(_, _, at) = self
            .entries
            .iter()
            .find(|(t, kind, _)| *t == tag && *kind == INT32)?;
        u32_at(self.data, at)
    }
}

/// The package one header describes (None: not a package, e.g. the
/// `gpg-pubkey` entries rpm keeps for imported keys).
fn package(blob: &[u8]) -> Option<Package> {
    let h = Header::parse(blob)?;
    let name = h.string(NAME)?;
    if name == "gpg-pubkey" {
        return None;
    }
    let epoch = h.int(EPOCH).map(|e| format!("{e}:")).unwrap_or_default();
    let version = format!("{epoch}{}-{}", h.string(VERSION)?, h.string(RELEASE)?);
    // `openssl-3.0.7-27.el9.src.rpm` → `openssl`.
    let source = h.string(SOURCE_RPM).and_then(|s| {
        let s = s.strip_suffix(".rpm")?.rsplit_once('.')?.0;
        let (rest, _release) = s.rsplit_once('-')?;
        Some(rest.rsplit_once('-')?.0.to_string())
    });
    Some(Package {
        source: source.filter(|s| *s != name),
        name,
        version,
        arch: h.string(ARCH).unwrap_or_default(),
        kind: "rpm",
    })
}

/// The packages of an rpmdb.sqlite file (with its write-ahead log, when
/// the image holds one), in name order.
pub fn sqlite(db: &[u8], wal: Option<&[u8]>) -> Result<Vec<Package>, String> {
    let nonce: String = crate::util::url::random::<8>()
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = std::env::temp_dir().join(format!("strata-rpmdb-{}-{nonce}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let read = || -> Result<Vec<Package>, String> {
        let path = dir.join("rpmdb.sqlite");
        std::fs::write(&path, db).map_err(|e| e.to_string())?;
        if let Some(wal) = wal {
            std::fs::write(dir.join("rpmdb.sqlite-wal"), wal).map_err(|e| e.to_string())?;
        }
        let conn = rusqlite::Connection::open(&path).map_err(|e| e.to_string())?;
        let mut stmt = conn
            .prepare("SELECT blob FROM Packages")
            .map_err(|e| format!("not an rpm database: {e}"))?;
        let blobs = stmt
            .query_map([], |row| row.get::<_, Vec<u8>>(0))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for blob in blobs {
            out.extend(package(&blob.map_err(|e| e.to_string())?));
        }
        out.sort();
        Ok(out)
    };
    let result = read();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    /// A header with `entries` (tag, type, value) laid out as rpm does.
    fn header(entries: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for (tag, kind, value) in entries {
            for n in [*tag, *kind, data.len() as u32, 1] {
                index.extend(n.to_be_bytes());
            }
            data.extend(value);
        }
        let mut out = (entries.len() as u32).to_be_bytes().to_vec();
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn s(v: &str) -> Vec<u8> {
        let mut b = v.as_bytes().to_vec();
        b.push(0);
        b
    }

    #[test]
    fn a_header_gives_name_epoch_version_arch_and_source() {
        let blob = header(&[
            (super::NAME, super::STRING, s("openssl-libs")),
            (super::EPOCH, super::INT32, 1u32.to_be_bytes().to_vec()),
            (super::VERSION, super::STRING, s("3.0.7")),
            (super::RELEASE, super::STRING, s("27.el9")),
            (super::ARCH, super::STRING, s("x86_64")),
            (
                super::SOURCE_RPM,
                super::STRING,
                s("openssl-3.0.7-27.el9.src.rpm"),
            ),
        ]);
        let p = super::package(&blob).unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.arch.as_str()),
            ("openssl-libs", "1:3.0.7-27.el9", "x86_64")
        );
        assert_eq!(p.source.as_deref(), Some("openssl"));
        let keys = header(&[(super::NAME, super::STRING, s("gpg-pubkey"))]);
        assert!(super::package(&keys).is_none());
        assert!(
            super::package(&blob[..20]).is_none(),
            "a cut header is refused"
        );
    }
}
