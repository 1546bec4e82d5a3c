//! `paybridge wechat ...`: the Wechat signature workbench.

use clap::Subcommand;

use crate::workbench::WbResult;

#[derive(Subcommand)]
pub enum WechatCommand {}

pub fn run(cmd: WechatCommand) -> WbResult {
    match cmd {}
}
