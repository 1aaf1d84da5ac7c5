//! A body map, as CPOMS has: where an injury was seen, as regions of a figure seen from the
//! front and the back, drawn as SVG (presentation attributes only, no script) with the marked
//! regions filled.

/// One region of the figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Its id, as stored.
    pub id: &'static str,
    /// Its name, as forms and pages show it.
    pub label: &'static str,
    /// Its shape: a rectangle `(x, y, width, height)` in the figure's 240 × 260 box (the front
    /// on the left, the back on the right).
    rect: (u16, u16, u16, u16),
}

macro_rules! regions {
    ($($id:literal, $label:literal, $x:literal, $y:literal, $w:literal, $h:literal;)+) => {
        &[$(Region { id: $id, label: $label, rect: ($x, $y, $w, $h) },)+]
    };
}

/// The regions, front then back.
pub const REGIONS: &[Region] = regions! {
    "head-front", "head and face", 45, 10, 30, 32;
    "neck-front", "neck (front)", 52, 42, 16, 10;
    "chest", "chest", 38, 52, 44, 34;
    "abdomen", "abdomen", 38, 86, 44, 30;
    "groin", "groin", 42, 116, 36, 16;
    "right-arm-front", "right arm (front)", 20, 54, 16, 62;
    "left-arm-front", "left arm (front)", 84, 54, 16, 62;
    "right-hand-front", "right hand (palm)", 18, 118, 18, 18;
    "left-hand-front", "left hand (palm)", 84, 118, 18, 18;
    "right-leg-front", "right leg (front)", 40, 134, 18, 96;
    "left-leg-front", "left leg (front)", 62, 134, 18, 96;
    "right-foot", "right foot", 36, 232, 22, 14;
    "left-foot", "left foot", 62, 232, 22, 14;
    "head-back", "back of the head", 165, 10, 30, 32;
    "neck-back", "neck (back)", 172, 42, 16, 10;
    "upper-back", "upper back", 158, 52, 44, 34;
    "lower-back", "lower back", 158, 86, 44, 30;
    "buttocks", "buttocks", 162, 116, 36, 16;
    "left-arm-back", "left arm (back)", 140, 54, 16, 62;
    "right-arm-back", "right arm (back)", 204, 54, 16, 62;
    "left-hand-back", "left hand (back)", 138, 118, 18, 18;
    "right-hand-back", "right hand (back)", 204, 118, 18, 18;
    "left-leg-back", "left leg (back)", 160, 134, 18, 96;
    "right-leg-back", "right leg (back)", 182, 134, 18, 96;
};

/// A region id that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a region of the body map")]
pub struct RegionError(String);

/// The regions named in a stored list (`chest,left-arm-front`), checked.
pub fn parse(list: &str) -> Result<Vec<&'static Region>, RegionError> {
    let mut out: Vec<&'static Region> = Vec::new();
    for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let r = REGIONS
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| RegionError(id.chars().take(40).collect()))?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The figure, front and back, with the `marked` regions filled.
pub fn svg(marked: &[&Region]) -> String {
    let mut out = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 240 262\" width=\"240\" role=\"img\" aria-label=\"Body map\">\
         <text x=\"60\" y=\"260\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6474\">front</text>\
         <text x=\"180\" y=\"260\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6474\">back</text>",
    );
    for r in REGIONS {
        let (x, y, w, h) = r.rect;
        let on = marked.iter().any(|m| m.id == r.id);
        let rx = if r.id.starts_with("head") { 14 } else { 4 };
        out.push_str(&format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"{rx}\" fill=\"{}\" stroke=\"#5b6474\" stroke-width=\"1\"><title>{}</title></rect>",
            if on { "#c62828" } else { "#eef0f4" },
            r.label
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_checked_and_the_marked_ones_are_filled() {
        let marked = parse("left-arm-front, chest,chest").expect("two regions");
        assert_eq!(marked.len(), 2);
        assert!(parse("chest,elbow").is_err());
        assert!(parse("").expect("none").is_empty());
        let svg = svg(&marked);
        assert_eq!(svg.matches("#c62828").count(), 2);
        assert!(!svg.contains("style=") && !svg.contains("<script"));
        let mut ids: Vec<&str> = REGIONS.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), REGIONS.len(), "ids are unique");
    }
}
