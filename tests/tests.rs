//! Integration tests, one binary: each module is a chapter.

mod calibrate;
mod cli;
mod engine;
mod history;
mod margin;
mod opening;
mod policies;
mod report;
mod shards;
mod shocks;
mod slurm;
mod supervision;
mod support;
mod unreached_books;
