//! The school's networks (subnet → site and group) and devices (name, address, MAC, owner),
//! which the DNS filter and the proxy use beside those in `haven.toml` to say who is asking.

use std::collections::HashSet;

use haven_core::clients::{check_cidr, DeviceFile, NetworkFile};
use sqlx::Row as _;

use crate::people::RowError;
use crate::{Store, StoreError};

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// What it is ("Year 5 laptop 12").
    pub name: String,
    /// Its fixed address, if it has one.
    pub address: Option<String>,
    /// Its MAC address, if known.
    pub mac: Option<String>,
    /// Whose it is: a user name.
    pub owner: Option<String>,
    /// Its group, when not the owner's.
    pub group: Option<String>,
}

/// What a device import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceReport {
    /// Devices added or updated.
    pub stored: usize,
    /// Rows not imported.
    pub errors: Vec<RowError>,
}

/// A MAC address in one form (`aa:bb:cc:dd:ee:ff`), from colons, dashes or dots.
fn mac(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    let sep = s.chars().filter(|c| !c.is_ascii_hexdigit()).count();
    if hex.len() != 12
        || sep > 5
        || s.chars()
            .any(|c| !(c.is_ascii_hexdigit() || ":-.".contains(c)))
    {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    Some(
        (0..6)
            .map(|i| &lower[i * 2..i * 2 + 2])
            .collect::<Vec<_>>()
            .join(":"),
    )
}

impl Store {
    /// Adds a network (or changes its site and group).
    pub async fn set_network(&self, cidr: &str, site: &str, group: &str) -> Result<(), StoreError> {
        check_cidr(cidr).map_err(|e| StoreError::Invalid(e.to_string()))?;
        if group.trim().is_empty() {
            return Err(StoreError::Invalid("a network needs a group".into()));
        }
        sqlx::query(
            "INSERT INTO networks (cidr, site, grp) VALUES ($1, $2, $3) \
             ON CONFLICT (cidr) DO UPDATE SET site = excluded.site, grp = excluded.grp",
        )
        .bind(cidr.trim())
        .bind(site.trim())
        .bind(group.trim())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a network; false when there was none.
    pub async fn remove_network(&self, cidr: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM networks WHERE cidr = $1")
            .bind(cidr.trim())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every network, as the client map reads them.
    pub async fn networks(&self) -> Result<Vec<NetworkFile>, StoreError> {
        let rows = sqlx::query("SELECT cidr, grp, site FROM networks ORDER BY cidr")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let site: String = r.try_get(2)?;
                Ok(NetworkFile {
                    cidr: r.try_get(0)?,
                    group: r.try_get(1)?,
                    site: (!site.is_empty()).then_some(site),
                })
            })
            .collect()
    }

    /// Every device.
    pub async fn devices(&self) -> Result<Vec<Device>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.name, d.address, d.mac, p.username, d.grp FROM devices d \
             LEFT JOIN people p ON p.id = d.owner_id ORDER BY d.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Device {
                    name: r.try_get(0)?,
                    address: r.try_get(1)?,
                    mac: r.try_get(2)?,
                    owner: r.try_get(3)?,
                    group: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The devices with an address, as the client map reads them: the device's own group, or
    /// else its (active) owner's.
    pub async fn device_map(&self) -> Result<Vec<DeviceFile>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.name, d.address, COALESCE(d.grp, p.grp), p.username FROM devices d \
             LEFT JOIN people p ON p.id = d.owner_id AND p.active = 1 \
             WHERE d.address IS NOT NULL ORDER BY d.name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            // A device with neither a group nor an owner who has one says nothing about who.
            if let Some(group) = r.try_get::<Option<String>, _>(2)? {
                out.push(DeviceFile {
                    name: r.try_get(0)?,
                    address: r.try_get(1)?,
                    group,
                    owner: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }

    /// Imports devices from CSV (`name`, `address`, `mac`, `owner` user name, `group`): rows
    /// added or updated by name; a row that cannot be read is reported by line and changes
    /// nothing.
    pub async fn import_devices(&self, bytes: &[u8]) -> Result<DeviceReport, StoreError> {
        let text = haven_core::textfile::decode(bytes);
        let mut reader = crate::people::csv_reader(&text);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| StoreError::Invalid(format!("cannot read the header line: {e}")))?
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let name_col =
            col("name").ok_or_else(|| StoreError::Invalid("the file has no name column".into()))?;
        let (addr_col, mac_col, owner_col, group_col) =
            (col("address"), col("mac"), col("owner"), col("group"));
        let mut report = DeviceReport::default();
        let mut seen = HashSet::new();
        let mut tx = self.write_tx().await?;
        for (i, rec) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    report.errors.push(RowError {
                        line,
                        message: format!("unreadable row: {e}"),
                    });
                    continue;
                }
            };
            let get = |c: Option<usize>| {
                c.and_then(|c| rec.get(c))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            // A message keeps about 100 bytes of the field it quotes.
            let mut fail = |message: String| {
                let message = haven_core::textfile::clip(&message, 160).into_owned();
                report.errors.push(RowError { line, message });
            };
            let Some(name) = get(Some(name_col)) else {
                fail("the name is empty".into());
                continue;
            };
            if !seen.insert(name.to_owned()) {
                fail(format!("{name:?} appears on an earlier line too"));
                continue;
            }
            let address = get(addr_col);
            if let Some(a) = address {
                if a.parse::<std::net::IpAddr>().is_err() {
                    fail(format!("address {a:?} is not an IP address"));
                    continue;
                }
            }
            let mac_addr = match get(mac_col) {
                Some(m) => match mac(m) {
                    Some(m) => Some(m),
                    None => {
                        fail(format!("MAC {m:?} is not a MAC address"));
                        continue;
                    }
                },
                None => None,
            };
            let owner = match get(owner_col) {
                Some(u) => {
                    let id: Option<i64> = sqlx::query("SELECT id FROM people WHERE username = $1")
                        .bind(u.to_ascii_lowercase())
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get(0))
                        .transpose()?;
                    match id {
                        Some(id) => Some(id),
                        None => {
                            fail(format!("nobody has the user name {u:?}"));
                            continue;
                        }
                    }
                }
                None => None,
            };
            sqlx::query(
                "INSERT INTO devices (name, address, mac, owner_id, grp) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET address = excluded.address, mac = excluded.mac, \
                 owner_id = excluded.owner_id, grp = excluded.grp",
            )
            .bind(name)
            .bind(address)
            .bind(mac_addr)
            .bind(owner)
            .bind(get(group_col))
            .execute(&mut *tx)
            .await?;
            report.stored += 1;
        }
        tx.commit().await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::mac;

    #[test]
    fn mac_addresses_in_any_usual_form() {
        for m in [
            "AA:BB:CC:DD:EE:FF",
            "aa-bb-cc-dd-ee-ff",
            "aabb.ccdd.eeff",
            "aabbccddeeff",
        ] {
            assert_eq!(mac(m).as_deref(), Some("aa:bb:cc:dd:ee:ff"), "{m}");
        }
        for bad in ["aa:bb:cc", "gg:bb:cc:dd:ee:ff", "aa bb cc dd ee ff"] {
            assert_eq!(mac(bad), None, "{bad}");
        }
    }
}
