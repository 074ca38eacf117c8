mod legacy;
fn main() {}
