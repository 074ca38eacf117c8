fn main() {}
mod broker;
