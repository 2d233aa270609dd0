//! The checks of a schedule, against the model (`Model`) and without the rule book: what
//! the server acknowledged is kept; after healing every phone holds exactly what the
//! server holds of the cases it may see, and nothing else; every concurrent edit of a
//! field (one entered again after a refusal counted as its new change) is a visible
//! conflict; no change was refused but for a reason the model knows;
//! every stored case reads, only deciders decided, and no document number is carried
//! twice.

use std::collections::{BTreeMap, BTreeSet};

use anjian_core::rules::CaseState;
use anjian_core::{CaseId, case_doc};
use automerge::{AutoCommit, ChangeHash};

use crate::{Sim, world};

fn stored(sim: &Sim, case: CaseId) -> Result<Option<AutoCommit>, String> {
    let server = sim.server.as_ref().ok_or("the server is down")?;
    server
        .storage()
        .load_document(case)
        .map_err(|e| format!("case {case} does not load: {e}"))
}

/// Every change the server ever showed as its own is in its storage.
pub fn acknowledged_kept(sim: &Sim) -> Result<(), String> {
    for (case, hashes) in &sim.model.acknowledged {
        let mut doc = stored(sim, *case)?;
        for hash in hashes {
            let kept = doc
                .as_mut()
                .is_some_and(|d| d.get_change_by_hash(hash).is_some());
            if !kept {
                return Err(format!(
                    "change {hash} of case {case} was acknowledged and is not stored"
                ));
            }
        }
    }
    Ok(())
}

/// The checks after healing.
pub fn outcome(sim: &mut Sim) -> Result<(), String> {
    acknowledged_kept(sim)?;
    let mut server_cases = BTreeMap::new();
    for &case in sim.model.cases.keys() {
        if let Some(doc) = stored(sim, case)? {
            server_cases.insert(case, doc);
        }
    }
    let mut numbers: BTreeMap<String, CaseId> = BTreeMap::new();
    let reentered = reentered(sim)?;
    for (case, doc) in &mut server_cases {
        rule_book_holds(sim, *case, doc)?;
        conflicts_visible(sim, *case, doc, &reentered)?;
        let state = CaseState::of_stored(doc).map_err(|e| format!("case {case}: {e}"))?;
        for writ in state.case().writs.iter().filter(|w| !w.provisional()) {
            if let Some(number) = writ.number()
                && let Some(other) = numbers.insert(number.to_owned(), *case)
            {
                return Err(format!(
                    "document number {number} is carried in case {case} and case {other}"
                ));
            }
        }
    }
    for index in 0..sim.phones.len() {
        let district = world::INSPECTORS[index].1;
        let held = sim.phone_heads(index)?;
        let store = sim.phones[index].store.as_mut().ok_or("a closed store")?;
        let refusals = store.refusals().map_err(|e| e.to_string())?;
        for refusal in &refusals {
            let case = refusal.case_id;
            let contested = sim
                .model
                .rectified
                .iter()
                .any(|((c, _), phones)| *c == case && phones.len() > 1);
            if !sim.model.approved.contains(&case) && !contested {
                return Err(format!(
                    "phone {index}: a change of case {case} was refused though no one ever approved it nor took a rectification step or raised a hazard to major concurrently: {}",
                    refusal.reason
                ));
            }
        }
        for (case, heads) in &held {
            let Some((owner, shared)) = sim.model.cases.get(case) else {
                return Err(format!("phone {index} holds case {case} no one opened"));
            };
            if *owner != district && !shared.contains(&district) {
                return Err(format!("phone {index} holds case {case} it may not see"));
            }
            match server_cases.get_mut(case) {
                Some(doc) => {
                    if *heads != case_doc::sorted_heads(doc) {
                        return Err(format!(
                            "phone {index} and the server hold case {case} differently after healing"
                        ));
                    }
                }
                None if refusals.iter().any(|r| r.case_id == *case) => {}
                None => {
                    return Err(format!(
                        "phone {index} holds case {case}, which the server never received"
                    ));
                }
            }
        }
        for case in server_cases.keys() {
            let (owner, shared) = &sim.model.cases[case];
            if (*owner == district || shared.contains(&district)) && !held.contains_key(case) {
                return Err(format!("phone {index} never received case {case}"));
            }
        }
    }
    Ok(())
}

/// Every stored case reads as a case, and every decision in its trail is a decider's:
/// the owning district's supervisor or the admin.
fn rule_book_holds(sim: &Sim, case: CaseId, doc: &AutoCommit) -> Result<(), String> {
    let state =
        CaseState::of_stored(doc).map_err(|e| format!("stored case {case} does not read: {e}"))?;
    let (owner, _) = &sim.model.cases[&case];
    for event in &state.case().review_events {
        if !matches!(event.kind.as_str(), "approve" | "return" | "reopen") {
            continue;
        }
        let decider = event.by == "admin"
            || world::SUPERVISORS
                .iter()
                .any(|(user, d)| *user == event.by && d == owner);
        if !decider {
            return Err(format!(
                "case {case}: {} by {}, who does not decide district {}",
                event.kind,
                event.by,
                world::DISTRICTS[*owner]
            ));
        }
    }
    Ok(())
}

fn ancestors(doc: &mut AutoCommit, of: ChangeHash) -> BTreeSet<ChangeHash> {
    let mut seen = BTreeSet::new();
    let mut next = vec![of];
    while let Some(hash) = next.pop() {
        if let Some(change) = doc.get_change_by_hash(&hash) {
            for dep in change.deps() {
                if seen.insert(*dep) {
                    next.push(*dep);
                }
            }
        }
    }
    seen
}

/// Each field edited concurrently with different values shows a conflict; a field whose
/// every edit saw the previous ones shows none.
/// Each change a phone entered again after a refusal took it (it built on a refused one),
/// and the change that holds it now.
fn reentered(sim: &mut Sim) -> Result<BTreeMap<ChangeHash, ChangeHash>, String> {
    let mut again = BTreeMap::new();
    for phone in &mut sim.phones {
        let store = phone.store.as_mut().ok_or("a closed store")?;
        for refusal in store.refusals().map_err(|e| e.to_string())? {
            if let (Ok(old), Some(Ok(new))) = (
                refusal.change_hash.parse::<ChangeHash>(),
                refusal.reentered_as.map(|h| h.parse::<ChangeHash>()),
            ) {
                again.insert(old, new);
            }
        }
    }
    Ok(again)
}

fn conflicts_visible(
    sim: &Sim,
    case: CaseId,
    doc: &mut AutoCommit,
    reentered: &BTreeMap<ChangeHash, ChangeHash>,
) -> Result<(), String> {
    let mut keys: BTreeMap<(String, &str), Vec<(ChangeHash, &str)>> = BTreeMap::new();
    for write in sim.model.writes.iter().filter(|w| w.case == case) {
        let Ok(mut hash) = write.change.parse::<ChangeHash>() else {
            continue;
        };
        // A write entered again (perhaps more than once) is in the change that holds it.
        while let Some(again) = reentered.get(&hash) {
            hash = *again;
        }
        if doc.get_change_by_hash(&hash).is_none() {
            // Refused: the refusals check accounts for it.
            continue;
        }
        keys.entry((write.finding.to_string(), write.field))
            .or_default()
            .push((hash, write.value.as_str()));
    }
    let shown: BTreeSet<(String, String)> = case_doc::conflicts(doc)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|c| c.path.len() >= 2)
        .map(|c| {
            (
                c.path[c.path.len() - 2].clone(),
                c.path[c.path.len() - 1].clone(),
            )
        })
        .collect();
    for ((finding, field), writes) in keys {
        let superseded: BTreeSet<ChangeHash> = writes
            .iter()
            .flat_map(|(hash, _)| ancestors(doc, *hash))
            .collect();
        let current: BTreeSet<&str> = writes
            .iter()
            .filter(|(hash, _)| !superseded.contains(hash))
            .map(|(_, value)| *value)
            .collect();
        let expected = current.len() > 1;
        let visible = shown.contains(&(finding.clone(), field.to_owned()));
        if expected != visible {
            return Err(format!(
                "case {case}: finding {finding} {field}: concurrent values {current:?}, conflict shown: {visible}"
            ));
        }
    }
    Ok(())
}
