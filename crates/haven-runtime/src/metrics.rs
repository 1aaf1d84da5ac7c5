//! Glue for exposing counters kept in plain atomics through `prometheus-client`.
//!
//! The hot path stays as it is: a service counts with `AtomicU64::fetch_add` (or
//! [`CountsByCategory::add`]) and nothing else. On a scrape, a
//! [`Collector`] reads the atomics and writes each figure with [`counter`], [`gauge`],
//! [`sum_and_count`] or [`CountsByCategory::encode`], under the names the services declare.
//!
//! The application registers every collector in one [`Registry`] and encodes it with
//! [`prometheus_client::encoding::text::encode`], served as [`CONTENT_TYPE`]. [`text`] encodes
//! one collector alone, for a part's own `render()`.
//!
//! Names are given as their sample names (`haven_dns_queries_total`): the OpenMetrics text
//! names a counter's family without `_total` in its `# HELP` and `# TYPE` lines, and the
//! encoder adds it back on the sample line, so sample lines read as they always have.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use prometheus_client::encoding::{EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::DescriptorEncoder;
pub use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A counter's family name: its sample name without `_total`.
fn family(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// Writes a counter: `name` is its sample name (ending `_total`).
pub fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(enc.encode_descriptor(family(name), help, None, c.metric_type())?)
}

/// Writes a gauge.
pub fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// Writes a sum and a count of observations (`name_sum`, `name_count`): a histogram whose one
/// bucket is `+Inf` (OpenMetrics' summary without quantiles, which `prometheus-client` does not
/// write).
pub fn sum_and_count(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    sum: f64,
    count: u64,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(sum, count, &[(f64::MAX, count)], None)
}

/// Encodes one collector alone, without the closing `# EOF` (so parts can still be joined
/// while the endpoint serves them one after another).
pub fn text(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
    out
}

/// A counter per category (blocks by category, for the metrics of the DNS filter and the
/// proxy): the name is copied only the first time a category is counted.
#[derive(Debug, Default)]
pub struct CountsByCategory(Mutex<BTreeMap<String, u64>>);

impl CountsByCategory {
    /// Counts one for `category`.
    pub fn add(&self, category: &str) {
        if let Ok(mut m) = self.0.lock() {
            match m.get_mut(category) {
                Some(n) => *n += 1,
                None => {
                    m.insert(category.to_owned(), 1);
                }
            }
        }
    }

    /// The sum over all categories.
    pub fn total(&self) -> u64 {
        self.0.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    /// A copy of the counts now.
    pub fn copy(&self) -> CountsByCategory {
        CountsByCategory(Mutex::new(
            self.0.lock().map(|m| m.clone()).unwrap_or_default(),
        ))
    }

    /// Writes the counter `name` (its sample name, ending `_total`), labelled by category.
    pub fn encode(&self, enc: &mut DescriptorEncoder, name: &str, help: &str) -> fmt::Result {
        let mut family_enc =
            enc.encode_descriptor(family(name), help, None, MetricType::Counter)?;
        if let Ok(m) = self.0.lock() {
            for (category, n) in m.iter() {
                let label = category.replace(['\\', '"', '\n'], "_");
                let labels = [("category", label.as_str())];
                family_enc
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sample(CountsByCategory);

    impl Collector for Sample {
        fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
            counter(&mut enc, "haven_x_total", "Xs.", 3)?;
            gauge(&mut enc, "haven_y", "Ys.", 4)?;
            sum_and_count(&mut enc, "haven_z_seconds", "Zs.", 0.5, 2)?;
            self.0.encode(&mut enc, "haven_b_total", "Bs, by category.")
        }
    }

    #[test]
    fn counters_gauges_and_categories_read_as_before_on_their_sample_lines() {
        let b = CountsByCategory::default();
        b.add("gambling");
        b.add("gambling");
        b.add("ut1:odd\"name");
        assert_eq!(b.total(), 3);
        let text = text(Sample(b.copy()));
        assert_eq!(
            text,
            "# HELP haven_x Xs.\n# TYPE haven_x counter\nhaven_x_total 3\n\
             # HELP haven_y Ys.\n# TYPE haven_y gauge\nhaven_y 4\n\
             # HELP haven_z_seconds Zs.\n# TYPE haven_z_seconds histogram\n\
             haven_z_seconds_sum 0.5\nhaven_z_seconds_count 2\nhaven_z_seconds_bucket{le=\"+Inf\"} 2\n\
             # HELP haven_b Bs, by category.\n# TYPE haven_b counter\n\
             haven_b_total{category=\"gambling\"} 2\nhaven_b_total{category=\"ut1:odd_name\"} 1\n"
        );
    }
}
