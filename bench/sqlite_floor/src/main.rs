//! rusqlite called directly: inserts in one transaction, point SELECTs
//! by primary key, and one SELECT of every row, each timed. Prints lines
//! in the format of bench/sqlite.lua.

use std::time::Instant;

use rusqlite::{params, Connection};

fn report(what: &str, n: usize, secs: f64) {
    println!("{what:<34} {:>12.0} /s  ({n} in {secs:.3} s)", n as f64 / secs);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: sqlite_floor DIR [N]");
    let n: usize = args.next().map_or(200_000, |s| s.parse().expect("N"));
    let path = format!("{dir}/floor.db");
    let _ = std::fs::remove_file(&path);
    let db = Connection::open(&path).unwrap();
    db.execute_batch("create table t(id integer primary key, name text, v real)")
        .unwrap();

    let t0 = Instant::now();
    db.execute_batch("begin").unwrap();
    {
        let mut ins = db.prepare("insert into t values(?, ?, ?)").unwrap();
        for i in 1..=n {
            ins.execute(params![i as i64, format!("name{i}"), i as f64 * 0.5])
                .unwrap();
        }
    }
    db.execute_batch("commit").unwrap();
    report("insert (one transaction)", n, t0.elapsed().as_secs_f64());

    // In one read transaction, as bench/sqlite.lua's and LuaDBI's.
    let lookups = n / 2;
    db.execute_batch("begin").unwrap();
    let t0 = Instant::now();
    {
        let mut sel = db.prepare("select name, v from t where id = ?").unwrap();
        let mut sum = 0usize;
        for i in 0..lookups {
            let id = (i * 7919) % n + 1;
            let name: String = sel.query_row([id as i64], |r| r.get(0)).unwrap();
            sum += name.len();
        }
        assert!(sum > 0);
    }
    report("point select (prepared)", lookups, t0.elapsed().as_secs_f64());
    db.execute_batch("commit").unwrap();

    let t0 = Instant::now();
    {
        let mut all = db.prepare("select id, name, v from t").unwrap();
        let rows: Vec<(i64, String, f64)> = all
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), n);
    }
    report("select all rows (rows/s)", n, t0.elapsed().as_secs_f64());
}
