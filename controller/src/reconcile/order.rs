//! Which change waits for which: the dependency edges of a plan, for apply
//! (a resource after what it needs) and for destroy (a resource after what
//! needs it). Orphans (resources the file no longer names) carry no
//! dependencies of their own; they follow the registry's creation order of
//! kinds: an orphan goes after the desired resources of its kind and of the
//! kinds created after it (so a renamed function's replacement is in place
//! first), and after the orphans of the kinds created after it.

use crate::resources::ResourceId;

/// One change of a plan, as ordering sees it.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: ResourceId,
    /// What the resource needs (desired resources only).
    pub dependencies: Vec<ResourceId>,
    /// The kind's place in the registry's creation order.
    pub rank: usize,
    pub orphan: bool,
}

/// For each node, the nodes it runs after when applying.
pub fn apply_order(nodes: &[Node]) -> Vec<Vec<usize>> {
    nodes
        .iter()
        .map(|node| {
            if node.orphan {
                indexes(nodes, |other| {
                    (other.orphan && other.rank > node.rank)
                        || (!other.orphan && other.rank >= node.rank)
                })
            } else {
                indexes(nodes, |other| {
                    !other.orphan && node.dependencies.contains(&other.id)
                })
            }
        })
        .collect()
}

/// For each node, the nodes it runs after when deleting: those that need
/// it, and the orphans of kinds created after it.
pub fn destroy_order(nodes: &[Node]) -> Vec<Vec<usize>> {
    nodes
        .iter()
        .map(|node| {
            indexes(nodes, |other| {
                (!other.orphan && !node.orphan && other.dependencies.contains(&node.id))
                    || (other.rank > node.rank && (other.orphan || node.orphan))
            })
        })
        .collect()
}

fn indexes(nodes: &[Node], wanted: impl Fn(&Node) -> bool) -> Vec<usize> {
    nodes
        .iter()
        .enumerate()
        .filter(|(_, other)| wanted(other))
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;

    fn node(kind: &'static str, name: &str, rank: usize, needs: &[(&'static str, &str)]) -> Node {
        Node {
            id: ResourceId::new(Kind(kind), name),
            dependencies: needs
                .iter()
                .map(|(kind, name)| ResourceId::new(Kind(kind), *name))
                .collect(),
            rank,
            orphan: false,
        }
    }

    fn orphan(kind: &'static str, name: &str, rank: usize) -> Node {
        Node {
            orphan: true,
            ..node(kind, name, rank, &[])
        }
    }

    fn plan() -> Vec<Node> {
        vec![
            node("role", "r", 3, &[]),
            node("function", "new", 5, &[("role", "r")]),
            node("permission", "new:p", 10, &[("function", "new")]),
            orphan("function", "old", 5),
            orphan("role", "old-role", 3),
            orphan("permission", "new:stale", 10),
        ]
    }

    #[test]
    fn apply_runs_needs_first_and_orphans_after_their_replacements() {
        let order = apply_order(&plan());
        assert_eq!(order[0], Vec::<usize>::new());
        assert_eq!(order[1], vec![0]);
        assert_eq!(order[2], vec![1]);
        // The old function goes once the functions and permissions of the
        // file are in place, after the stale permission.
        assert_eq!(order[3], vec![1, 2, 5]);
        // The old role after every desired resource from roles on, and
        // after the orphaned function and permission.
        assert_eq!(order[4], vec![0, 1, 2, 3, 5]);
        assert_eq!(order[5], vec![2]);
    }

    #[test]
    fn destroy_deletes_what_needs_a_resource_first() {
        let order = destroy_order(&plan());
        assert_eq!(order[0], vec![1, 3, 5]);
        assert_eq!(order[1], vec![2, 5]);
        assert_eq!(order[2], Vec::<usize>::new());
        assert_eq!(order[3], vec![2, 5]);
        assert_eq!(order[4], vec![1, 2, 3, 5]);
    }
}
