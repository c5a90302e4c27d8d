//! The command trait.

/// An instruction to an aggregate, which may accept it (emitting events) or refuse it.
///
/// A command can name the aggregate it targets, so that an application can
/// [`send`](crate::Engine::send) it without passing the id separately.
///
/// ```
/// use cqrs_core::Command;
///
/// enum AccountCommand {
///     Deposit { account: String, amount: u64 },
/// }
///
/// impl Command for AccountCommand {
///     fn command_name(&self) -> &'static str {
///         match self {
///             AccountCommand::Deposit { .. } => "Deposit",
///         }
///     }
///     fn aggregate_id(&self) -> Option<String> {
///         match self {
///             AccountCommand::Deposit { account, .. } => Some(account.clone()),
///         }
///     }
/// }
/// ```
pub trait Command: Send + Sync + 'static {
    /// A short name for logs and traces.
    fn command_name(&self) -> &'static str;

    /// The id of the aggregate this command targets, if the command carries it.
    fn aggregate_id(&self) -> Option<String> {
        None
    }
}
