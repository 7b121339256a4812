//! Which live member runs which check: rendezvous (highest-random-weight) hashing. PURE.
//!
//! Each (member, check) pair gets a score from a fixed hash; the member with the highest
//! score owns the check. Every node computes the same owner from the same member list,
//! without talking to the others; when a member dies only its checks move (each to the
//! member with the next-highest score), and when one joins it takes about `1/n` of them.
//! The hash is FNV-1a then a SplitMix64 finalizer: stable across builds and platforms, so
//! nodes of different versions agree.

/// The score of `member` for `check`.
pub fn score(member: &str, check: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0xff]).chain(check.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // SplitMix64's finalizer spreads FNV's weak low bits.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The member that owns `check` (ties, which need equal scores, go to the smaller name).
pub fn owner<'a>(check: &str, members: &'a [String]) -> Option<&'a str> {
    members
        .iter()
        .max_by(|a, b| score(a, check).cmp(&score(b, check)).then_with(|| b.cmp(a)))
        .map(String::as_str)
}

/// The checks of `checks` (by id) that `me` owns among `members`.
pub fn mine<'c, T>(
    checks: &'c [T],
    id: impl Fn(&T) -> &str,
    members: &[String],
    me: &str,
) -> Vec<&'c T> {
    checks
        .iter()
        .filter(|c| owner(id(c), members) == Some(me))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn checks_spread_evenly_and_only_a_dead_members_checks_move() {
        let checks: Vec<String> = (0..10_000)
            .map(|i| format!("endpoint:10.0.{}.{}:80", i / 256, i % 256))
            .collect();
        let all = members(10);
        let before: BTreeMap<&str, &str> = checks
            .iter()
            .map(|c| (c.as_str(), owner(c, &all).unwrap()))
            .collect();
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for o in before.values() {
            *per.entry(o).or_default() += 1;
        }
        assert_eq!(per.len(), 10);
        assert!(per.values().all(|n| (800..1200).contains(n)), "{per:?}");

        let alive: Vec<String> = all.iter().filter(|m| *m != "node-3").cloned().collect();
        let mut moved = 0;
        for c in &checks {
            let now = owner(c, &alive).unwrap();
            if before[c.as_str()] == "node-3" {
                moved += 1;
                assert_ne!(now, "node-3");
            } else {
                assert_eq!(now, before[c.as_str()], "a live member's check moved");
            }
        }
        assert_eq!(moved, per["node-3"]);
        let mine = mine(&checks, String::as_str, &alive, "node-0");
        assert!(mine.iter().all(|c| owner(c, &alive) == Some("node-0")));
    }

    #[test]
    fn scores_are_pinned() {
        // Golden values: a change here moves checks between nodes of different versions.
        assert_eq!(
            score("node-0", "endpoint:10.0.0.1:80"),
            0xb328_43db_19f0_f9fd
        );
        assert_eq!(
            score("node-1", "endpoint:10.0.0.1:80"),
            0x7ec9_b251_6ff0_e494
        );
        let members = ["node-0".to_owned(), "node-1".to_owned()];
        assert_eq!(owner("endpoint:10.0.0.1:80", &members), Some("node-0"));
        assert_eq!(owner("x", &[]), None);
    }
}
