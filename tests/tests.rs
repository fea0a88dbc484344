//! Integration tests, one binary: each module is a chapter.

mod cli;
mod engine;
mod policies;
mod report;
mod shards;
mod slurm;
