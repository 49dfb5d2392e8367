package edge

import "syscall"

// raiseFDLimit raises RLIMIT_NOFILE's soft limit to the hard one (the
// default soft limit, often 1024, is far below what an edge needs) and
// returns the limit in force; 0 when it cannot be read.
func raiseFDLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		raised := syscall.Rlimit{Cur: l.Max, Max: l.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return l.Cur, err
		}
		l = raised
	}
	return l.Cur, nil
}
