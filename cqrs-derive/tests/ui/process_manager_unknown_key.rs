use cqrs_core::ProcessManager;

#[derive(ProcessManager)]
#[process_manager(event = (), evnts(Confirmed))]
struct SendToKitchen;

fn main() {}
