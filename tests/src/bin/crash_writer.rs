//! Writes findings into a store in a loop and prints each one once `add_finding` has
//! returned, until it is killed. The crash test kills it mid-write and checks the store.

use std::io::Write;

use anjian_core::sample as fixtures;
use anjian_core::{CaseQuery, NewFinding, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: crash_writer STORE_FILE")?;
    let mut store = Store::open(&path, fixtures::inspector("writer"))?;
    let case = match store.cases(&CaseQuery::default())?.first() {
        Some(case) => case.id,
        None => {
            let enterprise = fixtures::enterprise(1);
            store.register_enterprise(&enterprise)?;
            store.open_case(&fixtures::new_case(&enterprise))?
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "case {case}")?;
    for i in 0.. {
        let finding = NewFinding {
            description: format!("第{i}条隐患：安全出口被货物堵塞，应急照明不亮"),
            ..fixtures::finding("")
        };
        let id = store.add_finding(case, &finding)?;
        writeln!(out, "committed {id}")?;
        out.flush()?;
    }
    Ok(())
}
