use cqrs_core::ProcessManager;

#[derive(ProcessManager)]
#[process_manager(event = (), on_delete)]
struct SendToKitchen;

fn main() {}
