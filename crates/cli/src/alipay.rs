//! `paybridge alipay ...`: the Alipay signature workbench.

use clap::Subcommand;

use crate::workbench::WbResult;

#[derive(Subcommand)]
pub enum AlipayCommand {}

pub fn run(cmd: AlipayCommand) -> WbResult {
    match cmd {}
}
