//! Haven's category taxonomy and the mapping of imported list categories onto it.
//!
//! The taxonomy follows the UK Safer Internet Centre "appropriate filtering" definitions, plus the
//! categories a school manages for itself. Every category has a stable id (used in policy files,
//! events and the API), a plain-English name and a one-line description a child can understand
//! (shown on block pages and in reports).

use serde::Serialize;

/// What kind of category this is; decides how policy may treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CategoryClass {
    /// Illegal content (IWF, CTIRU). Blocked for everyone, always; no rule may change that.
    Illegal,
    /// A UK Safer Internet Centre "appropriate filtering" content category.
    Uksic,
    /// A category the school manages (social networks, games, VPNs…).
    SchoolManaged,
    /// General-interest categories, usually allowed (news, education, sport…).
    General,
}

/// One category of the taxonomy.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Category {
    /// Stable identifier, e.g. `gambling`.
    pub id: &'static str,
    /// Plain-English name, e.g. "Gambling".
    pub name: &'static str,
    /// One line a child can understand.
    pub description: &'static str,
    /// Which class of category this is.
    pub class: CategoryClass,
}

const fn cat(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    class: CategoryClass,
) -> Category {
    Category {
        id,
        name,
        description,
        class,
    }
}

use CategoryClass::{General, Illegal, SchoolManaged, Uksic};

/// Haven's taxonomy, in display order.
pub const TAXONOMY: &[Category] = &[
    // Illegal: loaded from licensed lists, never overridable.
    cat(
        "iwf",
        "Child sexual abuse content (IWF list)",
        "This page is against the law, so it is blocked for everyone.",
        Illegal,
    ),
    cat(
        "ctiru",
        "Terrorist content (CTIRU list)",
        "This page is against the law, so it is blocked for everyone.",
        Illegal,
    ),
    // UK Safer Internet Centre appropriate-filtering categories.
    cat(
        "discrimination",
        "Discrimination",
        "Pages that treat people unfairly because of who they are.",
        Uksic,
    ),
    cat(
        "hate-speech",
        "Hate speech",
        "Pages that say hateful or aggressive things about groups of people.",
        Uksic,
    ),
    cat(
        "drugs",
        "Drugs and substance abuse",
        "Pages about illegal drugs or misusing medicines and other substances.",
        Uksic,
    ),
    cat(
        "extremism",
        "Extremism",
        "Pages that push extreme ideas that can lead people to hurt others.",
        Uksic,
    ),
    cat(
        "gambling",
        "Gambling",
        "Pages for betting money or playing casino games.",
        Uksic,
    ),
    cat(
        "malware",
        "Malware",
        "Pages that can harm your device or steal information.",
        Uksic,
    ),
    cat(
        "phishing",
        "Phishing and scams",
        "Pages that pretend to be something else to trick you.",
        Uksic,
    ),
    cat(
        "hacking",
        "Hacking",
        "Pages about breaking into computers or attacking websites.",
        Uksic,
    ),
    cat(
        "pornography",
        "Pornography",
        "Pages with pictures or videos that are only for adults.",
        Uksic,
    ),
    cat(
        "piracy",
        "Piracy and copyright theft",
        "Pages that share films, music, games or software without permission.",
        Uksic,
    ),
    cat(
        "self-harm",
        "Self-harm and suicide",
        "Pages that could encourage people to hurt themselves.",
        Uksic,
    ),
    cat(
        "violence",
        "Violence and weapons",
        "Pages that show violence or explain how to make weapons.",
        Uksic,
    ),
    cat(
        "misinformation",
        "Mis- and disinformation",
        "Pages that spread false or misleading information.",
        Uksic,
    ),
    // School-managed categories.
    cat(
        "adult-themes",
        "Adult themes",
        "Pages with grown-up content that is not meant for children.",
        SchoolManaged,
    ),
    cat(
        "social-networks",
        "Social networks",
        "Sites where people share posts and photos with others.",
        SchoolManaged,
    ),
    cat(
        "chat",
        "Chat and messaging",
        "Sites for chatting with people you may not know.",
        SchoolManaged,
    ),
    cat(
        "games",
        "Online games",
        "Sites for playing games online.",
        SchoolManaged,
    ),
    cat(
        "dating",
        "Dating",
        "Sites for adults looking for a partner.",
        SchoolManaged,
    ),
    cat(
        "streaming",
        "Video, music and radio streaming",
        "Sites for watching videos or listening to music and radio.",
        SchoolManaged,
    ),
    cat(
        "webmail",
        "Webmail",
        "Email websites other than the school's own.",
        SchoolManaged,
    ),
    cat(
        "file-sharing",
        "File sharing and hosting",
        "Sites for uploading and sharing files with anyone.",
        SchoolManaged,
    ),
    cat(
        "vpn-proxy",
        "VPNs, proxies and anonymisers",
        "Tools that try to get around the school's filter.",
        SchoolManaged,
    ),
    cat(
        "doh",
        "DNS-over-HTTPS resolvers",
        "Services that let a device skip the school's filter.",
        SchoolManaged,
    ),
    cat(
        "ai-chatbots",
        "AI chatbots and tools",
        "Websites where a computer program writes or makes things for you.",
        SchoolManaged,
    ),
    cat(
        "ads",
        "Advertising and tracking",
        "Adverts and sites that follow what you do online.",
        SchoolManaged,
    ),
    cat(
        "shopping",
        "Shopping",
        "Sites for buying and selling things.",
        SchoolManaged,
    ),
    cat(
        "forums",
        "Forums",
        "Message boards where anyone can post.",
        SchoolManaged,
    ),
    cat(
        "blogs",
        "Blogs",
        "Personal websites and diaries anyone can write.",
        SchoolManaged,
    ),
    cat(
        "downloads",
        "Software downloads",
        "Sites for downloading programs and apps.",
        SchoolManaged,
    ),
    cat(
        "url-shorteners",
        "Link shorteners",
        "Short links that hide where they really go.",
        SchoolManaged,
    ),
    cat(
        "remote-access",
        "Remote access",
        "Tools that let someone control a computer from far away.",
        SchoolManaged,
    ),
    cat(
        "spyware",
        "Spyware and stalkerware",
        "Apps sold for secretly watching other people.",
        SchoolManaged,
    ),
    cat(
        "crypto",
        "Cryptocurrency",
        "Sites about digital money like Bitcoin.",
        SchoolManaged,
    ),
    cat(
        "dynamic-dns",
        "Dynamic DNS",
        "Services that give changing computers a fixed web address.",
        SchoolManaged,
    ),
    cat(
        "web-hosting",
        "Web hosting",
        "Services that host anyone's website.",
        SchoolManaged,
    ),
    cat(
        "cheating",
        "Exam cheating",
        "Pages that help people cheat in tests and exams.",
        SchoolManaged,
    ),
    cat(
        "mobile-content",
        "Mobile phone content",
        "Ringtones, wallpapers and other downloads for phones.",
        SchoolManaged,
    ),
    // General categories.
    cat(
        "education",
        "Education",
        "Learning sites for schools and children.",
        General,
    ),
    cat(
        "sex-education",
        "Sex and relationships education",
        "Health and relationships information for young people.",
        General,
    ),
    cat(
        "news",
        "News and magazines",
        "Newspapers, magazines and news sites.",
        General,
    ),
    cat("banking", "Banking", "Online banks.", General),
    cat(
        "finance",
        "Finance",
        "Money, investing and financial news.",
        General,
    ),
    cat("jobs", "Job search", "Sites for finding a job.", General),
    cat("sport", "Sport", "Sport news, clubs and results.", General),
    cat(
        "religion",
        "Religion",
        "Religious groups and organisations.",
        General,
    ),
    cat(
        "cults",
        "Sects and cults",
        "Groups that some people think are harmful sects.",
        General,
    ),
    cat(
        "astrology",
        "Astrology",
        "Horoscopes and star signs.",
        General,
    ),
    cat(
        "celebrity",
        "Celebrities",
        "Famous people and gossip about them.",
        General,
    ),
    cat(
        "cartoons",
        "Cartoons and manga",
        "Comics, cartoons and manga.",
        General,
    ),
    cat(
        "cooking",
        "Food and cooking",
        "Recipes and cooking.",
        General,
    ),
    cat(
        "translation",
        "Translation",
        "Tools that translate between languages.",
        General,
    ),
    cat(
        "software-updates",
        "Software updates",
        "Updates for computers and apps.",
        General,
    ),
    cat(
        "security-software",
        "Security software",
        "Tools that protect and clean computers.",
        General,
    ),
    cat(
        "reassigned-domains",
        "Reassigned domains",
        "Web addresses that now belong to someone new.",
        General,
    ),
    cat(
        "other",
        "Other listed sites",
        "Sites a list names without a clearer category.",
        General,
    ),
];

/// Looks up a taxonomy category by id.
pub fn by_id(id: &str) -> Option<&'static Category> {
    TAXONOMY.iter().find(|c| c.id == id)
}

/// Whether a category id names an illegal list (IWF, CTIRU).
pub fn is_illegal(id: &str) -> bool {
    by_id(id).is_some_and(|c| c.class == CategoryClass::Illegal)
}

/// The UT1 blacklist folders and the Haven category each maps onto.
///
/// All 69 folders of the UT1 collection (2026-08) are listed. A folder not named here (UT1 adds folders from
/// time to time) is kept under its own name, `ut1:<folder>`, never dropped.
pub const UT1_MAPPING: &[(&str, &str)] = &[
    ("adult", "pornography"),
    ("agressif", "hate-speech"),
    ("ai", "ai-chatbots"),
    ("arjel", "gambling"),
    ("associations_religieuses", "religion"),
    ("astrology", "astrology"),
    ("audio-video", "streaming"),
    ("bank", "banking"),
    ("bitcoin", "crypto"),
    ("blog", "blogs"),
    ("celebrity", "celebrity"),
    ("chat", "chat"),
    ("child", "education"),
    ("cleaning", "security-software"),
    ("cooking", "cooking"),
    ("cryptojacking", "malware"),
    ("dangerous_material", "violence"),
    ("dating", "dating"),
    ("ddos", "hacking"),
    ("dialer", "malware"),
    ("doh", "doh"),
    ("download", "downloads"),
    ("drogue", "drugs"),
    ("dynamic-dns", "dynamic-dns"),
    ("educational_games", "education"),
    ("examen_pix", "education"),
    ("exceptions_liste_bu", "education"),
    ("fakenews", "misinformation"),
    ("filehosting", "file-sharing"),
    ("financial", "finance"),
    ("forums", "forums"),
    ("gambling", "gambling"),
    ("games", "games"),
    ("hacking", "hacking"),
    ("jobsearch", "jobs"),
    ("lingerie", "adult-themes"),
    ("liste_blanche", "education"),
    ("liste_bu", "education"),
    ("malware", "malware"),
    ("manga", "cartoons"),
    ("marketingware", "ads"),
    ("mixed_adult", "adult-themes"),
    ("mobile-phone", "mobile-content"),
    ("phishing", "phishing"),
    ("press", "news"),
    ("publicite", "ads"),
    ("radio", "streaming"),
    ("reaffected", "reassigned-domains"),
    ("redirector", "vpn-proxy"),
    ("remote-control", "remote-access"),
    ("residential-proxies", "vpn-proxy"),
    ("sect", "cults"),
    ("sexual_education", "sex-education"),
    ("shopping", "shopping"),
    ("shortener", "url-shorteners"),
    ("social_networks", "social-networks"),
    ("special", "other"),
    ("sports", "sport"),
    ("stalkerware", "spyware"),
    ("strict_redirector", "vpn-proxy"),
    ("strong_redirector", "vpn-proxy"),
    ("translation", "translation"),
    ("tricheur", "cheating"),
    ("tricheur_pix", "cheating"),
    ("update", "software-updates"),
    ("vpn", "vpn-proxy"),
    ("warez", "piracy"),
    ("webhosting", "web-hosting"),
    ("webmail", "webmail"),
];

/// UT1's own alias folder names (symbolic links in the upstream tree).
const UT1_ALIASES: &[(&str, &str)] = &[
    ("ads", "publicite"),
    ("aggressive", "agressif"),
    ("drugs", "drogue"),
    ("mail", "forums"),
    ("porn", "adult"),
    ("proxy", "redirector"),
    ("violence", "agressif"),
];

/// Maps a UT1 folder name to a Haven category id; unknown folders keep their own name.
pub fn map_ut1(folder: &str) -> String {
    let folder = UT1_ALIASES
        .iter()
        .find(|(alias, _)| *alias == folder)
        .map_or(folder, |(_, real)| real);
    match UT1_MAPPING.iter().find(|(f, _)| *f == folder) {
        Some((_, id)) => (*id).to_owned(),
        None => format!("ut1:{folder}"),
    }
}

/// Maps a folder of a squidGuard-style tree to a category id for the named mapping.
///
/// `mapping` is `ut1` for the UT1 collection; any other mapping keeps folder names as
/// `<mapping>:<folder>` unless the folder already names a Haven category.
pub fn map_folder(mapping: &str, folder: &str) -> String {
    if mapping == "ut1" {
        return map_ut1(folder);
    }
    if by_id(folder).is_some() {
        folder.to_owned()
    } else {
        format!("{mapping}:{folder}")
    }
}

/// Whether a category id is acceptable in a policy: a taxonomy id or a kept source name (`src:name`).
pub fn is_valid_id(id: &str) -> bool {
    by_id(id).is_some()
        || id.split_once(':').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && id
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_:.+".contains(&c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_described() {
        for (i, c) in TAXONOMY.iter().enumerate() {
            assert!(
                TAXONOMY[..i].iter().all(|o| o.id != c.id),
                "duplicate {}",
                c.id
            );
            assert!(c.description.ends_with('.'), "{} needs a sentence", c.id);
            assert!(!c.id.contains(':'));
        }
    }

    #[test]
    fn every_ut1_folder_maps_to_a_taxonomy_category() {
        assert_eq!(UT1_MAPPING.len(), 69); // every folder of the 2026-08 UT1 tree
        for (folder, id) in UT1_MAPPING {
            assert!(
                by_id(id).is_some(),
                "{folder} -> {id} is not in the taxonomy"
            );
            assert!(
                !is_illegal(id),
                "UT1 folder {folder} must not map to an illegal list"
            );
        }
    }

    #[test]
    fn ut1_mapping_covers_the_shipped_inventory() {
        // Every folder of the real UT1 tree, when present beside the repository, is mapped.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ut1");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: {} not present", dir.display());
            return;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(
                    !map_ut1(&name).starts_with("ut1:"),
                    "UT1 folder {name} is unmapped"
                );
            }
        }
    }

    #[test]
    fn unknown_folders_keep_their_name() {
        assert_eq!(map_ut1("brand-new-list"), "ut1:brand-new-list");
        assert_eq!(map_ut1("porn"), "pornography");
        assert_eq!(map_folder("shalla", "gambling"), "gambling");
        assert_eq!(map_folder("shalla", "spyware-x"), "shalla:spyware-x");
        assert!(is_valid_id("ut1:brand-new-list"));
        assert!(!is_valid_id("gamblin"));
    }
}
