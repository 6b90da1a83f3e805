//! Keyset paging over id-ordered listings: the page token is the last id of
//! the previous page, so pages stay stable while items are added.

use crate::error::{Error, Result};

/// Page size used when a request says 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page a request may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Checks a requested page size (0 means the default).
pub fn page_size(requested: u32) -> Result<usize> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE as usize),
        n if n <= MAX_PAGE_SIZE => Ok(n as usize),
        n => Err(Error::invalid("page_size", format!("is {n}; the limit is {MAX_PAGE_SIZE}"))),
    }
}

/// Listing order by key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Ascending,
    /// Newest first, for time-ordered ids.
    Descending,
}

/// Sorts `items` by `key` in `order` and returns the page after `token` plus
/// the token of the next page (empty on the last page).
pub fn paginate<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> &str,
    size: usize,
    token: &str,
    order: Order,
) -> (Vec<T>, String) {
    let after = |item: &T| match order {
        Order::Ascending => key(item) <= token,
        Order::Descending => key(item) >= token,
    };
    items.sort_by(|a, b| match order {
        Order::Ascending => key(a).cmp(key(b)),
        Order::Descending => key(b).cmp(key(a)),
    });
    let start = if token.is_empty() { 0 } else { items.partition_point(after) };
    let mut page: Vec<T> = items.into_iter().skip(start).take(size + 1).collect();
    let next = if page.len() > size {
        page.truncate(size);
        page.last().map(|item| key(item).to_owned()).unwrap_or_default()
    } else {
        String::new()
    };
    (page, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once_in_order() {
        let items: Vec<String> = (0..7).map(|i| format!("id{i}")).collect();
        for order in [Order::Ascending, Order::Descending] {
            let mut seen = Vec::new();
            let mut token = String::new();
            loop {
                let (page, next) = paginate(items.clone(), |s| s.as_str(), 3, &token, order);
                assert!(page.len() <= 3);
                seen.extend(page);
                if next.is_empty() {
                    break;
                }
                token = next;
            }
            let mut expected = items.clone();
            if order == Order::Descending {
                expected.reverse();
            }
            assert_eq!(seen, expected, "{order:?}");
        }
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(0).unwrap(), 100);
        assert_eq!(page_size(1000).unwrap(), 1000);
        assert!(page_size(1001).unwrap_err().to_string().contains("page_size"));
    }
}
