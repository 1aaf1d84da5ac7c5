//! Attacks on Haven's promises, one module per surface, each test named after what it attacks
//! (issue 12). `docs/SECURITY.md` maps every defence to the test here that proves it.

mod audit;
mod console;
mod dns;
mod listeners;
mod lists;
mod proxy;
mod store;
