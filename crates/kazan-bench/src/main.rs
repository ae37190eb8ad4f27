//! kazan-bench: kazan side by side with its peers (being written).

fn main() {
    println!("kazan-bench: being written");
}
