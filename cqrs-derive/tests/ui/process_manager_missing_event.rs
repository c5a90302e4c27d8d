use cqrs_core::ProcessManager;

#[derive(ProcessManager)]
#[process_manager(name = "send_to_kitchen")]
struct SendToKitchen;

fn main() {}
