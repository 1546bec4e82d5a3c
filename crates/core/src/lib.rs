//! paybridge-core: the pure vocabulary every other crate shares.
//!
//! Nothing in here performs I/O. Money is [`Fen`] (integer cents of CNY), never a float.

pub mod channel;
pub mod decide;
pub mod money;
pub mod payout;
pub mod state;
pub mod types;

pub use money::{Fen, MoneyError};
pub use payout::{
    CreatePayout, PayoutNotification, PayoutPayee, PayoutSnapshot, ProviderPayoutStatus,
    SceneReport,
};
pub use state::{PaymentStatus, RefundStatus, TransitionError};
pub use types::{Channel, Mode, ParseEnumError, Scene};
