//! The order changes run in: a graph of which change waits for which, and
//! a scheduler that hands out the changes whose prerequisites succeeded, so
//! that independent changes run concurrently and a failure stops only the
//! changes that wait for it (directly or through others).

/// Where one node of the graph stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Waiting,
    Running,
    Succeeded,
    Failed,
    /// Not run: the node with this index (a prerequisite, or one of its
    /// prerequisites) failed.
    Skipped(usize),
}

/// Nodes `0..n`, each waiting for some others.
#[derive(Clone, Debug)]
pub struct Scheduler {
    waits_for: Vec<Vec<usize>>,
    states: Vec<NodeState>,
}

/// A graph that cannot be run: these nodes wait for each other in a circle.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("changes wait for each other in a circle: nodes {0:?}")]
pub struct Cycle(pub Vec<usize>);

impl Scheduler {
    /// `waits_for[i]` lists the nodes node `i` runs after. Self-edges and
    /// indexes out of range are ignored; a cycle is refused.
    pub fn new(waits_for: Vec<Vec<usize>>) -> Result<Scheduler, Cycle> {
        let n = waits_for.len();
        let waits_for: Vec<Vec<usize>> = waits_for
            .into_iter()
            .enumerate()
            .map(|(node, mut before)| {
                before.retain(|&other| other != node && other < n);
                before.sort_unstable();
                before.dedup();
                before
            })
            .collect();
        let scheduler = Scheduler {
            states: vec![NodeState::Waiting; n],
            waits_for,
        };
        scheduler.check_acyclic()?;
        Ok(scheduler)
    }

    fn check_acyclic(&self) -> Result<(), Cycle> {
        // Kahn's algorithm: whatever cannot be ordered is on or behind a cycle.
        let n = self.waits_for.len();
        let mut remaining: Vec<usize> = self.waits_for.iter().map(Vec::len).collect();
        let mut waiters: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (node, before) in self.waits_for.iter().enumerate() {
            for &other in before {
                waiters[other].push(node);
            }
        }
        let mut free: Vec<usize> = (0..n).filter(|&node| remaining[node] == 0).collect();
        let mut ordered = 0;
        while let Some(node) = free.pop() {
            ordered += 1;
            for &waiter in &waiters[node] {
                remaining[waiter] -= 1;
                if remaining[waiter] == 0 {
                    free.push(waiter);
                }
            }
        }
        if ordered == n {
            Ok(())
        } else {
            Err(Cycle((0..n).filter(|&node| remaining[node] > 0).collect()))
        }
    }

    /// The waiting nodes whose prerequisites all succeeded; they are marked
    /// running.
    pub fn take_ready(&mut self) -> Vec<usize> {
        let ready: Vec<usize> = (0..self.states.len())
            .filter(|&node| {
                self.states[node] == NodeState::Waiting
                    && self.waits_for[node]
                        .iter()
                        .all(|&other| self.states[other] == NodeState::Succeeded)
            })
            .collect();
        for &node in &ready {
            self.states[node] = NodeState::Running;
        }
        ready
    }

    /// Records how a running node ended. A failure skips every node that
    /// waits for it, directly or through others.
    pub fn finish(&mut self, node: usize, succeeded: bool) {
        if succeeded {
            self.states[node] = NodeState::Succeeded;
            return;
        }
        self.states[node] = NodeState::Failed;
        let mut changed = true;
        while changed {
            changed = false;
            for waiter in 0..self.states.len() {
                if self.states[waiter] != NodeState::Waiting {
                    continue;
                }
                let cause =
                    self.waits_for[waiter]
                        .iter()
                        .find_map(|&other| match self.states[other] {
                            NodeState::Failed => Some(other),
                            NodeState::Skipped(cause) => Some(cause),
                            _ => None,
                        });
                if let Some(cause) = cause {
                    self.states[waiter] = NodeState::Skipped(cause);
                    changed = true;
                }
            }
        }
    }

    /// Whether nothing is waiting or running any more.
    pub fn is_done(&self) -> bool {
        !self
            .states
            .iter()
            .any(|state| matches!(state, NodeState::Waiting | NodeState::Running))
    }

    pub fn state(&self, node: usize) -> NodeState {
        self.states[node]
    }

    /// The nodes `node` waits for.
    pub fn prerequisites(&self, node: usize) -> &[usize] {
        &self.waits_for[node]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the scheduler to the end, failing the nodes in `failing`;
    /// returns the batches in the order they were handed out.
    fn run(scheduler: &mut Scheduler, failing: &[usize]) -> Vec<Vec<usize>> {
        let mut batches = Vec::new();
        while !scheduler.is_done() {
            let batch = scheduler.take_ready();
            assert!(!batch.is_empty(), "stuck with nodes waiting");
            for &node in &batch {
                scheduler.finish(node, !failing.contains(&node));
            }
            batches.push(batch);
        }
        batches
    }

    #[test]
    fn independent_nodes_run_together_and_dependents_after() {
        // 0 role, 1 repository, 2 function (needs 0, 1), 3 api (needs 2),
        // 4 permission (needs 2, 3), 5 bucket.
        let mut scheduler = Scheduler::new(vec![
            vec![],
            vec![],
            vec![0, 1],
            vec![2],
            vec![2, 3],
            vec![],
        ])
        .unwrap();
        assert_eq!(
            run(&mut scheduler, &[]),
            vec![vec![0, 1, 5], vec![2], vec![3], vec![4]]
        );
    }

    #[test]
    fn a_failure_skips_only_what_waits_for_it() {
        let mut scheduler = Scheduler::new(vec![
            vec![],
            vec![],
            vec![0, 1],
            vec![2],
            vec![2, 3],
            vec![],
        ])
        .unwrap();
        run(&mut scheduler, &[1]);
        assert_eq!(scheduler.state(0), NodeState::Succeeded);
        assert_eq!(scheduler.state(1), NodeState::Failed);
        assert_eq!(scheduler.state(2), NodeState::Skipped(1));
        assert_eq!(scheduler.state(3), NodeState::Skipped(1));
        assert_eq!(scheduler.state(4), NodeState::Skipped(1));
        assert_eq!(scheduler.state(5), NodeState::Succeeded);
    }

    #[test]
    fn a_node_runs_as_soon_as_its_own_prerequisites_succeed() {
        // 2 waits only for 0; 3 waits for 1, which waits for 0.
        let mut scheduler = Scheduler::new(vec![vec![], vec![0], vec![0], vec![1]]).unwrap();
        assert_eq!(scheduler.take_ready(), vec![0]);
        scheduler.finish(0, true);
        assert_eq!(scheduler.take_ready(), vec![1, 2]);
        scheduler.finish(2, true);
        assert!(scheduler.take_ready().is_empty());
        scheduler.finish(1, true);
        assert_eq!(scheduler.take_ready(), vec![3]);
    }

    #[test]
    fn cycles_are_refused_and_self_edges_ignored() {
        assert_eq!(
            Scheduler::new(vec![vec![1], vec![2], vec![0], vec![]]).unwrap_err(),
            Cycle(vec![0, 1, 2])
        );
        let mut scheduler = Scheduler::new(vec![vec![0], vec![0, 7]]).unwrap();
        assert_eq!(run(&mut scheduler, &[]), vec![vec![0], vec![1]]);
    }
}
