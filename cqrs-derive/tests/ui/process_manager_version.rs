use cqrs_core::ProcessManager;

#[derive(ProcessManager)]
#[process_manager(event = (), version = 2)]
struct SendToKitchen;

fn main() {}
