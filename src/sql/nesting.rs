//! How deep a statement's trees could be, measured on its tokens before anything parses it.
//!
//! Owns: the nesting limit of SQL text. Must not touch: planning or execution.
//!
//! Why on tokens: a parsed `1+1+…+1` with 500,000 terms is a left-deep tree 500,000 levels
//! deep. Planning it, optimising it, printing it, even dropping it recurse once per level, and a
//! thread's stack ends long before (`SELECT 1+1+…` with 2,000 terms aborted the whole service:
//! a stack overflow is not a panic that can be caught). Counting tokens is a loop, so the
//! estimate costs nothing however hostile the text is, and a statement over the limit never
//! becomes a tree at all.
//!
//! The estimate is an upper bound of the depth of the expression and plan trees: within each
//! parenthesis group, the operators of one comma-separated item chain up (`a OR b OR c` is
//! three levels), set operations, joins and `FROM` lists chain across the whole group, and a
//! nested group adds its own depth to the item it sits in. A long `IN (…)` list or a wide
//! `SELECT` list is flat, and counts as flat.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// The deepest statement accepted (estimated levels). Real queries stay far below it: the
/// deepest of `queries/` is under 40. Query threads get stacks sized for it ([`STACK_BYTES`]).
pub const MAX_DEPTH: usize = 1000;

/// Stack size of every thread that plans or runs SQL: enough for [`MAX_DEPTH`] levels in an
/// unoptimised build, with room to spare. (Stacks are reserved, not committed: an idle thread
/// costs the pages it touched.)
pub const STACK_BYTES: usize = 64 << 20;

#[derive(Default)]
struct Group {
    /// Levels that chain across the whole group: set operations, joins, `FROM` items, SELECTs.
    chain: usize,
    /// Operators of the current comma-separated item.
    item: usize,
    /// The deepest nested group inside the current item.
    item_child: usize,
    /// The deepest item of the group so far.
    deepest_item: usize,
    /// Between `FROM` and the next clause: commas there are cross joins, which chain.
    in_from: bool,
}

impl Group {
    fn end_item(&mut self) {
        self.deepest_item = self.deepest_item.max(self.item + self.item_child);
        self.item = 0;
        self.item_child = 0;
    }

    fn depth(mut self) -> usize {
        self.end_item();
        self.chain + self.deepest_item + 1
    }
}

/// The estimated depth of `sql`, or `None` when it does not even tokenize (the parser will say
/// why, and the text cannot be deep in that case: it is never parsed).
pub fn estimated_depth(sql: &str) -> Option<usize> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let mut stack: Vec<Group> = vec![Group::default()];
    let mut deepest = 0usize;
    for t in &tokens {
        let top = stack.last_mut().expect("the outermost group stays");
        match t {
            Token::LParen | Token::LBracket | Token::LBrace => stack.push(Group::default()),
            Token::RParen | Token::RBracket | Token::RBrace => {
                if stack.len() > 1 {
                    let depth = stack.pop().expect("more than one").depth();
                    deepest = deepest.max(depth);
                    let parent = stack.last_mut().expect("the outermost group stays");
                    parent.item_child = parent.item_child.max(depth);
                }
            }
            Token::Comma => {
                if top.in_from {
                    top.chain += 1;
                }
                top.end_item();
            }
            Token::SemiColon => top.end_item(),
            Token::Word(w) if w.quote_style.is_none() => match w.keyword {
                Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::IN
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::CASE
                | Keyword::WHEN
                | Keyword::ELSE
                | Keyword::EXISTS
                | Keyword::ANY
                | Keyword::ALL
                | Keyword::CAST
                | Keyword::OVER => top.item += 1,
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::JOIN => {
                    top.chain += 1;
                }
                // A SELECT plans as a projection over a filter over an aggregate (or fewer).
                Keyword::SELECT => top.chain += 3,
                Keyword::FROM => top.in_from = true,
                Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::ON
                | Keyword::USING
                | Keyword::QUALIFY
                | Keyword::WINDOW => top.in_from = false,
                _ => {}
            },
            Token::EOF
            | Token::Word(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Whitespace(_)
            | Token::Period
            | Token::Colon
            | Token::Placeholder(_) => {}
            // Every other token is an operator: one more level in its item.
            _ => top.item += 1,
        }
    }
    // Unclosed groups (the parser will refuse them) count as closed.
    while stack.len() > 1 {
        let depth = stack.pop().expect("more than one").depth();
        let parent = stack.last_mut().expect("the outermost group stays");
        parent.item_child = parent.item_child.max(depth);
    }
    Some(deepest.max(stack.pop().expect("the outermost group").depth()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kafka_apply_thread_gets_the_planning_stack() {
        assert_eq!(crate::ingest::kafka::APPLY_STACK_BYTES, STACK_BYTES);
    }

    fn depth(sql: &str) -> usize {
        estimated_depth(sql).unwrap()
    }

    #[test]
    fn chains_count_and_lists_do_not() {
        let plus = format!("SELECT 1{}", "+1".repeat(2000));
        assert!(depth(&plus) > 2000);
        let or = format!("SELECT 1 WHERE a=1{}", " OR a=1".repeat(3000));
        assert!(depth(&or) > 3000);
        let list = format!(
            "SELECT * FROM events WHERE server IN ({})",
            vec!["'gw-01'"; 5000].join(",")
        );
        assert!(depth(&list) < 20, "{}", depth(&list));
        let wide = format!("SELECT {} FROM events", vec!["ts"; 5000].join(","));
        assert!(depth(&wide) < 20);
        let parens = format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300));
        assert!(depth(&parens) > 300);
        let unions = vec!["SELECT 1, 2"; 500].join(" UNION ALL ");
        assert!(depth(&unions) > 500);
        let cross = format!("SELECT 1 FROM {}", vec!["events"; 800].join(", "));
        assert!(depth(&cross) > 800);
        let case = format!(
            "SELECT {} 1 {}",
            "CASE WHEN 1=1 THEN".repeat(400),
            " END".repeat(400)
        );
        assert!(depth(&case) > 400);
    }

    #[test]
    fn the_shipped_queries_are_far_below_the_limit() {
        for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries")).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "sql") {
                let d = depth(&std::fs::read_to_string(&p).unwrap());
                assert!(d < 60, "{}: {d}", p.display());
            }
        }
    }
}
