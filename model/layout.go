package model

// Param is one named tensor of a network inside the flat parameter vector:
// elements [Offset, Offset+Size) in row-major order of Shape.
type Param struct {
	Name   string
	Shape  []int
	Offset int
	Size   int
}

// Layout is the canonical order of a network's parameters in the flat vector. It is a
// function of the Spec, the input shape and the class count only.
type Layout []Param

// Size is the length of the flat parameter vector.
func (l Layout) Size() int {
	if len(l) == 0 {
		return 0
	}
	last := l[len(l)-1]
	return last.Offset + last.Size
}

// add appends a parameter of the given shape right after the previous one.
func (l Layout) add(name string, shape ...int) Layout {
	size := 1
	for _, d := range shape {
		size *= d
	}
	return append(l, Param{Name: name, Shape: shape, Offset: l.Size(), Size: size})
}
